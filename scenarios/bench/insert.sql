-- pgbench script (pgbench -n -f insert.sql): one single-row insert per transaction into
--   bench(id bigint PRIMARY KEY, v text)
-- which pgbench_vs_postgres.sh creates on each system beforehand. The key is drawn from
-- 9e18 values, so two transactions of one run practically never collide.
\set id random(1, 9000000000000000000)
INSERT INTO bench (id, v) VALUES (:id, 'pgbench');
