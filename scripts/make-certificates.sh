#!/usr/bin/env bash
# Makes a private CA and, signed by it, a server certificate and a client certificate, for TLS
# between Herald, nginx and Redis when no certificates come from elsewhere (tests, trying the
# TLS compose variant). Production certificates come from your own CA or ACME.
#
#   scripts/make-certificates.sh <dir> [name ...]
#
# <dir> gets ca.crt, ca.key, server.crt, server.key, client.crt and client.key. The names (DNS
# names or IP addresses; default localhost and 127.0.0.1) go into the server certificate.
set -euo pipefail
dir=${1:?usage: make-certificates.sh <dir> [name ...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
mkdir -p "$dir"
cd "$dir"

san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="IP:$name,"; else san+="DNS:$name,"; fi
done
san=${san%,}

openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=Herald test CA" \
  -keyout ca.key -out ca.crt -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() {
  local who=$1 subject=$2 extensions=$3
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$who.key" -out "$who.csr" 2>/dev/null
  openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
    -extfile <(printf '%s\n' "$extensions") -out "$who.crt" 2>/dev/null
  rm "$who.csr"
}
sign server "/CN=${names[0]}" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth"
sign client "/CN=herald" "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 600 ./*.key
echo "certificates for ${names[*]} in $(pwd)"
