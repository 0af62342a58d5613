#!/usr/bin/env bash
# run-demo.sh — newcomer command 1: installs the dependencies, builds mbx into build/,
# starts the local one-node cluster in .cluster/ (deploy/local/cluster up), delivers a
# message to the demo mailbox and lists its Inbox. The node keeps running afterwards.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
DIR=.cluster
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'run-demo: %s\n' "$*" >&2; exit 1; }

case "${1:-}" in
  "") ;;
  -h | --help) echo "usage: ./run-demo.sh   (installs, builds into build/, starts .cluster/; see README.md)"; exit 0 ;;
  *) echo "run-demo: takes no arguments (see README.md)" >&2; exit 2 ;;
esac

step "installing dependencies (deploy/install-deps.sh)"
deploy/install-deps.sh || die "dependency installation failed (see above)"

step "building into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null ||
  die "cmake configure failed: see the messages above"
cmake --build build -j"$(nproc)" || die "build failed: see the compiler messages above"

step "starting the local cluster in $DIR/ (deploy/local/cluster up)"
export MBX_BIN=$ROOT/build
if deploy/local/cluster status --dir "$DIR" >/dev/null 2>&1; then
  echo "already running in $DIR/: using it"
else
  deploy/local/cluster up --dir "$DIR" || die "the cluster did not start (see above; logs in $DIR/log/)"
fi

# shellcheck source=/dev/null
. "$DIR/env"
MBX_PASSWORD=$(cat "$DIR/demo-password")
export MBX_PASSWORD

step "delivering deploy/local/sample.eml to demo@example.com (transport certificate)"
mbx --cert "$DIR/tls/transport.pem" --key "$DIR/tls/transport.key" \
  deliver --to demo@example.com deploy/local/sample.eml ||
  die "delivery failed (see above; node log: $DIR/log/node1.log)"

step "listing the Inbox: mbx --user demo@example.com list Inbox"
mbx --user demo@example.com list Inbox || die "listing the Inbox failed (see above; node log: $DIR/log/node1.log)"

cat <<EOM

mbx is running: node1 on $MBX_SERVER, data and logs in $DIR/.
Use it from this directory:
  . $DIR/env                                   # MBX_SERVER, MBX_CA, operator cert, mbx on PATH
  export MBX_PASSWORD=\$(cat $DIR/demo-password)  # the demo mailbox's password (else mbx prompts)
  mbx --user demo@example.com list Inbox
  mbx --user demo@example.com folders
  mbx admin db list
More in README.md ("A short tour"). Status: deploy/local/cluster status
Stop it:  deploy/local/cluster down            (data kept; add --purge to delete $DIR/)
EOM
