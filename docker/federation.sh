#!/bin/sh
# The coordinator's one-shot federation jobs in a container (installed as fedcodec-federation):
#
#   fedcodec-federation register        register every site's SuperNode public key with the
#                                       SuperLink (started with --enable-supernode-auth, it
#                                       accepts only registered SuperNodes); idempotent
#   fedcodec-federation run [ARGS...]   submit a training run: `fedcodec-server federation run
#                                       --dir $FED --app $APP ARGS...`
#
# Both first write the flwr CLI's connection to the SuperLink into $FED/flwr (the format and
# connection name of fedcodec.server.federated.superlink). Settings (environment):
#   SUPERLINK          host:port of the SuperLink            (default coordinator:9093)
#   ROOT_CERTIFICATES  CA that signed the SuperLink's cert    (default /run/secrets/tls/ca.pem)
#   SUPERNODE_KEYS     folder of <site>.pub public keys       (default /run/secrets/supernodes)
#   FED                federation folder; give it the coordinator's path, since the run's
#                      checkpoints go to $FED/server there  (default /var/lib/fedcodec/state/federation)
#   APP                the Flower app folder (pyproject.toml) (default /opt/fedcodec/app)
set -eu

SUPERLINK="${SUPERLINK:-coordinator:9093}"
ROOT_CERTIFICATES="${ROOT_CERTIFICATES:-/run/secrets/tls/ca.pem}"
SUPERNODE_KEYS="${SUPERNODE_KEYS:-/run/secrets/supernodes}"
FED="${FED:-/var/lib/fedcodec/state/federation}"
APP="${APP:-/opt/fedcodec/app}"

connection="$(python -c 'import sys
from pathlib import Path
from fedcodec.server.federated.superlink import CONNECTION, write_connection
write_connection(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
print(CONNECTION)' "$FED/flwr" "$SUPERLINK" "$ROOT_CERTIFICATES")"

register() {
    found=0
    for key in "$SUPERNODE_KEYS"/*.pub; do
        [ -f "$key" ] || continue
        found=$((found + 1))
        site="$(basename "$key" .pub)"
        if output="$(FLWR_HOME="$FED/flwr" flwr supernode register "$key" "$connection" \
                --name "$site" 2>&1)"; then
            echo "registered $site"
        elif printf '%s' "$output" | grep -q "already in use"; then
            echo "$site was already registered"
        else
            printf 'cannot register %s: %s\n' "$site" "$output" >&2
            exit 1
        fi
    done
    if [ "$found" -eq 0 ]; then
        echo "no SuperNode public keys in $SUPERNODE_KEYS" >&2
        exit 1
    fi
}

case "${1:-}" in
    register)
        register
        ;;
    run)
        shift
        exec fedcodec-server federation run --dir "$FED" --app "$APP" "$@"
        ;;
    *)
        echo "usage: fedcodec-federation register | run [fedcodec-server federation run args]" >&2
        exit 2
        ;;
esac
