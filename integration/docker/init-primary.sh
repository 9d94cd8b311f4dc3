#!/bin/bash
# Runs once in the compose primary: roles and databases like integration/sandbox.sh creates.
set -e
psql -v ON_ERROR_STOP=1 --username postgres <<'SQL'
CREATE ROLE app LOGIN PASSWORD 'app';
CREATE ROLE streamer LOGIN REPLICATION PASSWORD 'streamer';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
CREATE DATABASE app OWNER app;
CREATE DATABASE app2 OWNER app;
GRANT ALL ON DATABASE app TO md5user;
SQL
cat >> "$PGDATA/pg_hba.conf" <<'HBA'
host replication postgres all scram-sha-256
host all md5user all md5
HBA
