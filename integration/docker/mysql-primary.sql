-- MySQL 8.0 primary for docker-compose: the app user logs in with caching_sha2_password (MySQL
-- 8's default), so Sluice's server-side full path (RSA public key, no TLS) is exercised.
CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED WITH caching_sha2_password BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED WITH caching_sha2_password BY 'app';
CREATE DATABASE IF NOT EXISTS app;
CREATE DATABASE IF NOT EXISTS app2;
GRANT ALL ON app.* TO 'app'@'%';
GRANT ALL ON app2.* TO 'app'@'%';
GRANT PROCESS ON *.* TO 'app'@'%';
