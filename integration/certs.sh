#!/usr/bin/env bash
# Throwaway certificates for the TLS tests, made with the openssl command:
#   integration/certs.sh DIR
# DIR/ca.pem + ca.key            a test CA
# DIR/server.pem + server.key    CN=localhost, SAN DNS:localhost IP:127.0.0.1, signed by ca
# DIR/client.pem + client.key    CN=app (a client certificate), signed by ca
# DIR/admin-client.pem + .key    CN=admin, signed by ca
# DIR/other-ca.pem, other-server.pem + other-server.key   a second CA and a server cert it signed
# Idempotent: existing certificates are kept unless one expires within a week. EC P-256 keys
# (fast to make), SHA-256 signatures, valid for a year.
set -euo pipefail
DIR="${1:?usage: certs.sh DIR}"
mkdir -p "$DIR"
cd "$DIR"
fresh() { [ -f "$1" ] && openssl x509 -checkend 604800 -noout -in "$1" >/dev/null 2>&1; }
fresh ca.pem && fresh server.pem && fresh other-server.pem && fresh admin-client.pem && exit 0
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
ca() {  # name
  ec "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 365 -subj "/CN=Sluice test $1" -out "$1.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() {  # name ca cn san
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\n%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -sha256 -days 365 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca
leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
leaf client ca app "extendedKeyUsage=clientAuth"
leaf admin-client ca admin "extendedKeyUsage=clientAuth"
ca other-ca
leaf other-server other-ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
chmod 600 ./*.key
