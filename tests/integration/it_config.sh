# it_config.sh — mbxd's configuration checks: a missing file, an unknown key, bad
# values and a missing required key each make mbxd exit non-zero with a message that
# names the file, the line and the key; --check-config accepts a good file.
. "$(dirname "$0")/lib.sh"
it_init
W="$IT_WORK"

step "make certificates and a good config"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/O=mbx-it/CN=it-ca" -keyout "$W/ca.key" -out "$W/ca.pem" >/dev/null 2>&1 || fail "CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=mbx-it/OU=node/CN=node1" \
  -keyout "$W/node1.key" -out "$W/node1.csr" >/dev/null 2>&1 || fail "CSR"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$W/san.ext"
openssl x509 -req -in "$W/node1.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial \
  -days 2 -extfile "$W/san.ext" -out "$W/node1.pem" >/dev/null 2>&1 || fail "sign"
mkdir -p "$W/data"
good="$W/good.conf"
cat >"$good" <<CONF
# a good config for it_config.sh
node_name = node1
listen = 127.0.0.1:1
data_dir = $W/data
tls_cert = $W/node1.pem
tls_key = $W/node1.key
tls_ca = $W/ca.pem
max_message_bytes = 1M
log_level = info
CONF

# check_config FILE: runs the config check (never starts serving); sets RC/ERR.
check_config() {
  timeout 20 "$MBXD" --check-config --config "$1" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  if [[ $RC -eq 2 ]] && grep -qi 'usage' "$W/err"; then   # alternative spelling
    timeout 20 "$MBXD" --check-config "$1" >"$W/out" 2>"$W/err" </dev/null
    RC=$?
  fi
  OUT=$(cat "$W/out"); ERR=$(cat "$W/err")
}

# run_bad FILE: mbxd --config FILE must exit non-zero, quickly, without serving.
run_bad() {
  timeout 20 "$MBXD" --config "$1" >"$W/out" 2>"$W/err" </dev/null
  RC=$?
  OUT=$(cat "$W/out"); ERR=$(cat "$W/err")
  [[ $RC -ne 124 ]] || fail "mbxd kept running with the bad config $1"
  [[ $RC -ne 0 ]] || fail "mbxd exited 0 with the bad config $1"
  ! grep -aEq 'Sanitizer|runtime error:' <<<"$ERR" || fail "sanitizer report for $1: $ERR"
}
must_say() { # TEXT WHAT: stderr (or stdout) of the last run contains TEXT
  grep -qF -- "$1" <<<"$ERR$OUT" || fail "$2: message does not mention '$1'"
}

step "--check-config on the good config"
check_config "$good"
[[ $RC -eq 0 ]] || fail "--check-config rejected a good config (rc=$RC): $ERR"
[[ -z "$(ls -A "$W/data")" ]] || echo "note: --check-config wrote into data_dir"

step "missing file"
run_bad "$W/no-such.conf"
must_say "$W/no-such.conf" "missing file"

step "unknown key"
cp "$good" "$W/unknown.conf"; echo "frobnicate = 1" >>"$W/unknown.conf"
line=$(wc -l <"$W/unknown.conf")
run_bad "$W/unknown.conf"
must_say "frobnicate" "unknown key"; must_say "unknown.conf:$line" "unknown key"
check_config "$W/unknown.conf"; [[ $RC -ne 0 ]] || fail "--check-config accepted an unknown key"

step "bad value: listen = nope"
sed 's/^listen = .*/listen = nope/' "$good" >"$W/listen.conf"
line=$(grep -n '^listen' "$W/listen.conf" | cut -d: -f1)
run_bad "$W/listen.conf"
must_say "listen" "bad listen"; must_say "listen.conf:$line" "bad listen"; must_say "nope" "bad listen"

step "bad value: max_message_bytes = lots"
sed 's/^max_message_bytes = .*/max_message_bytes = lots/' "$good" >"$W/size.conf"
line=$(grep -n '^max_message_bytes' "$W/size.conf" | cut -d: -f1)
run_bad "$W/size.conf"
must_say "max_message_bytes" "bad size"; must_say "size.conf:$line" "bad size"

step "bad value: log_level = loud"
sed 's/^log_level = .*/log_level = loud/' "$good" >"$W/level.conf"
run_bad "$W/level.conf"; must_say "log_level" "bad log_level"

step "unreadable tls_cert"
sed "s|^tls_cert = .*|tls_cert = $W/missing.pem|" "$good" >"$W/cert.conf"
run_bad "$W/cert.conf"; must_say "tls_cert" "missing cert"

step "not key = value"
cp "$good" "$W/syntax.conf"; echo "this line has no equals sign" >>"$W/syntax.conf"
line=$(wc -l <"$W/syntax.conf")
run_bad "$W/syntax.conf"; must_say "syntax.conf:$line" "syntax error"

step "missing required key"
for key in listen data_dir node_name; do
  grep -v "^$key " "$good" >"$W/no-$key.conf"
  run_bad "$W/no-$key.conf"
  must_say "$key" "missing $key"; must_say "no-$key.conf" "missing $key"
done
[[ -z "$(ls -A "$W/data")" ]] || echo "note: a refused config left files in data_dir"
echo "PASS $IT_NAME"
