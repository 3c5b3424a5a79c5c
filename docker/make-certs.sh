#!/bin/sh
# Issue every certificate and key docker/compose.yaml mounts: TLS with `fedcodec-server pki`,
# SuperNode identities with fedcodec.client.federated.supernode.create_node_keys:
#   CERTS/ca/            ca.pem, ca.key  (the CA key stays here: no container mounts it)
#   CERTS/coordinator/   server.pem, server.key, ca.pem   (Flower SuperLink)
#   CERTS/storage/       server.pem, server.key, ca.pem   (storage service)
#   CERTS/analysis/      server.pem, server.key, ca.pem   (analysis service)
#   CERTS/<site>/        site.pem, site.key, ca.pem       (one per site, CN = site name)
#                        supernode.key, supernode.pub     (the site's SuperNode identity; the
#                        coordinator registers only the .pub: register-supernodes.sh)
#
# Usage: make-certs.sh [CERTS]   (default /certs; SITES="site-a site-b site-c" by default)
# In compose: `docker compose --profile setup run --rm pki` writes ./certs as user 10001, so
# the services (also user 10001) can read their 0600 keys. Existing files are kept: pki refuses
# to overwrite a key unless FORCE=--force is set.
set -eu

CERTS="${1:-/certs}"
SITES="${SITES:-site-a site-b site-c}"
FORCE="${FORCE:-}"

if [ ! -f "$CERTS/ca/ca.pem" ] || [ -n "$FORCE" ]; then
    fedcodec-server pki init-ca --ca-dir "$CERTS/ca" --name "fedcodec deployment CA" $FORCE
fi
for service in coordinator storage analysis; do
    if [ ! -f "$CERTS/$service/server.pem" ] || [ -n "$FORCE" ]; then
        fedcodec-server pki issue-server --ca-dir "$CERTS/ca" --out "$CERTS/$service" \
            --host "$service" --host localhost --ip 127.0.0.1 $FORCE
    fi
done
for site in $SITES; do
    if [ ! -f "$CERTS/$site/site.pem" ] || [ -n "$FORCE" ]; then
        fedcodec-server pki issue-site "$site" --ca-dir "$CERTS/ca" --out "$CERTS/$site" $FORCE
    fi
    if [ ! -f "$CERTS/$site/supernode.key" ] || [ -n "$FORCE" ]; then
        python -c 'import sys
from fedcodec.client.federated.supernode import create_node_keys
create_node_keys(sys.argv[1], force=sys.argv[2] == "--force")' "$CERTS/$site" "$FORCE"
    fi
done
echo "certificates under $CERTS: ca, coordinator, storage, analysis, $SITES"
