#!/bin/sh
# The baseline of bin/bench: pgpool-II 4.3's sample failover.sh as seed 003 deploys it,
# adapted to Debian paths. pgpool passes its own pick as the new main node (the lowest
# live node id) and the script promotes it over ssh. Nothing more: no survey, no fence,
# no follow_primary, as in the sample setup.
# failover_command = '... %d %h %p %D %m %H %M %P %r %R %N %S'
FAILED_NODE_ID="$1"
FAILED_NODE_HOST="$2"
NEW_MAIN_NODE_ID="$5"
NEW_MAIN_NODE_HOST="$6"
OLD_PRIMARY_NODE_ID="$8"
NEW_MAIN_NODE_PGDATA="${10}"
PGHOME=$(ls -d /usr/lib/postgresql/* | sort -V | tail -1)

logger -t baseline-failover "failed node $FAILED_NODE_ID ($FAILED_NODE_HOST), new main $NEW_MAIN_NODE_ID ($NEW_MAIN_NODE_HOST)"
if [ "$NEW_MAIN_NODE_ID" -lt 0 ]; then
    logger -t baseline-failover "all nodes are down: skipping failover"
    exit 0
fi
if [ "$OLD_PRIMARY_NODE_ID" != "-1" ] && [ "$FAILED_NODE_ID" != "$OLD_PRIMARY_NODE_ID" ]; then
    logger -t baseline-failover "a standby failed: nothing to promote"
    exit 0
fi
ssh -T -o BatchMode=yes -o ConnectTimeout=5 postgres@"$NEW_MAIN_NODE_HOST" \
    "$PGHOME/bin/pg_ctl -D $NEW_MAIN_NODE_PGDATA -w promote"
rc=$?
logger -t baseline-failover "promote of $NEW_MAIN_NODE_HOST exited $rc"
exit $rc
