#!/usr/bin/env bash
# mkcerts.sh — makes the cluster CA and its certificates with the openssl CLI:
# node certificates (server+client auth, for clients and node-to-node TLS) and role
# certificates for clients (OU=operator: admin commands, OU=transport: deliver).
# A node certificate names its node: subject /O=mbx/OU=node/CN=NAME, where NAME is the
# node's node_name (and a DNS:NAME subject alternative name). Nodes act on a
# node-to-node request (pull, acknowledgement, seed, copy hosting) only in the name the
# sender's certificate gives, and reach a peer only if its certificate names that peer.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: mkcerts.sh ca     DIR                       make DIR/ca.pem + DIR/ca.key (kept if present)
       mkcerts.sh node   DIR NAME [SAN...]         DIR/NAME.pem + .key, subject /O=mbx/OU=node/CN=NAME
                                                   NAME: the node's node_name (a-z, 0-9, '-')
                                                   SAN: IP:a.b.c.d or DNS:host
                                                   (always adds IP:127.0.0.1, DNS:localhost, DNS:NAME)
       mkcerts.sh client DIR ROLE [CN]             DIR/ROLE.pem + .key, subject /O=mbx/OU=ROLE/CN=CN
                                                   ROLE: operator | transport
       mkcerts.sh all    DIR NODE...               ca + each node + operator + transport
Keys are EC P-256, mode 0600; certificates are valid MBX_CERT_DAYS days (default 825).
USAGE
  exit 2
}

die() { printf 'mkcerts: %s\n' "$*" >&2; exit 1; }

DAYS=${MBX_CERT_DAYS:-825}
[[ "$DAYS" =~ ^[0-9]+$ ]] || die "MBX_CERT_DAYS must be a number of days, got '$DAYS'"
command -v openssl >/dev/null || die "openssl not found: run deploy/install-deps.sh"

# Our own minimal config, so the system openssl.cnf cannot add or clash with extensions.
mk_conf() { # file, extensions section body
  printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n[ext]\n%s\n' "$2" >"$1"
}

new_key() { # path: EC P-256, never readable by others
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
    die "could not generate key $1"
  chmod 600 "$1"
}

cmd_ca() {
  local dir=$1
  mkdir -p "$dir"
  if [[ -s "$dir/ca.pem" && -s "$dir/ca.key" ]]; then
    return 0 # an existing CA stays: re-issuing it would orphan every certificate
  fi
  local conf
  conf=$(mktemp)
  mk_conf "$conf" $'basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash'
  new_key "$dir/ca.key"
  openssl req -new -x509 -config "$conf" -extensions ext -key "$dir/ca.key" \
    -subj "/O=mbx/CN=mbx cluster CA" -days "$DAYS" -sha256 -out "$dir/ca.pem" 2>/dev/null ||
    { rm -f "$conf"; die "could not create the CA certificate in $dir"; }
  rm -f "$conf"
  chmod 644 "$dir/ca.pem"
}

sign() { # dir name subject extensions
  local dir=$1 name=$2 subj=$3 ext=$4 conf csr
  [[ -s "$dir/ca.pem" && -s "$dir/ca.key" ]] || die "no CA in $dir: run 'mkcerts.sh ca $dir' first"
  conf=$(mktemp)
  csr=$(mktemp)
  mk_conf "$conf" "$ext"
  new_key "$dir/$name.key"
  if ! openssl req -new -config "$conf" -key "$dir/$name.key" -subj "$subj" -out "$csr" 2>/dev/null ||
     ! openssl x509 -req -in "$csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
       -set_serial "0x$(openssl rand -hex 16)" -days "$DAYS" -sha256 \
       -extfile "$conf" -extensions ext -out "$dir/$name.pem" 2>/dev/null; then
    rm -f "$conf" "$csr"
    die "could not sign the certificate for $name in $dir"
  fi
  rm -f "$conf" "$csr"
  chmod 644 "$dir/$name.pem"
}

valid_name() { [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]]; }
# Exactly what mbxd accepts as node_name: the CN is the node's identity.
valid_node_name() { [[ "$1" =~ ^[a-z0-9-]{1,63}$ ]]; }

cmd_node() {
  local dir=$1 name=$2
  shift 2
  valid_node_name "$name" ||
    die "bad node name '$name': the certificate names the node, so NAME must be its node_name (1-63 of a-z, 0-9 and '-')"
  local san="IP:127.0.0.1,DNS:localhost,DNS:$name" s
  for s in "$@"; do
    [[ "$s" =~ ^(IP|DNS):[A-Za-z0-9.:_-]+$ ]] || die "bad SAN '$s' (use IP:a.b.c.d or DNS:host)"
    san+=",$s"
  done
  sign "$dir" "$name" "/O=mbx/OU=node/CN=$name" \
    "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = $san"
}

cmd_client() {
  local dir=$1 role=$2 cn=${3:-$2}
  [[ "$role" == operator || "$role" == transport ]] || die "unknown role '$role' (operator or transport)"
  valid_name "$cn" || die "bad common name '$cn'"
  sign "$dir" "$role" "/O=mbx/OU=$role/CN=$cn" \
    "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth"
}

(($# >= 2)) || usage
cmd=$1
dir=$2
shift 2
case "$cmd" in
  ca) (($# == 0)) || usage; cmd_ca "$dir" ;;
  node) (($# >= 1)) || usage; cmd_node "$dir" "$@" ;;
  client) (($# >= 1 && $# <= 2)) || usage; cmd_client "$dir" "$@" ;;
  all)
    (($# >= 1)) || usage
    cmd_ca "$dir"
    for n in "$@"; do cmd_node "$dir" "$n"; done
    cmd_client "$dir" operator
    cmd_client "$dir" transport
    ;;
  *) usage ;;
esac
