-- Keep autovacuum from taking statistics of the case tables while they are tiny.
--
-- intake prepares its statements once per connection and PostgreSQL keeps their generic
-- plans until the table's statistics change. Statistics taken while a table holds a few
-- pages (autovacuum looks every minute; at a few hundred cases a second the table is
-- then tiny) make every plan a sequential scan, even the per-key probes (LATERAL ...
-- LIMIT 1, services/intake/case_ops.c), and such a plan stays for the next minute while
-- the table grows by thousands of rows: at 300 cases analysed, case.decide's
-- case_deadline update hashed a sequential scan of the whole table. Never analysed, the
-- planner sizes a table by its current pages (at least 10) and keeps the index probes;
-- analysed at a few thousand rows it keeps them too (EXPLAIN of the generic plans).
--
-- So: no automatic ANALYZE or VACUUM of these tables before 5,000 changed rows (inserted,
-- updated or deleted; the defaults are 50 and 1,000). Beyond that the usual scale
-- factors (a fifth or a tenth of the table) decide, as before; a large table is not
-- affected. A few thousand dead row versions in a small table cost nothing noticeable.
ALTER TABLE cases SET (autovacuum_analyze_threshold = 5000, autovacuum_vacuum_threshold = 5000,
                       autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE case_deadline SET (autovacuum_analyze_threshold = 5000,
                               autovacuum_vacuum_threshold = 5000,
                               autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE case_proposal SET (autovacuum_analyze_threshold = 5000,
                               autovacuum_vacuum_threshold = 5000,
                               autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE review_verdict SET (autovacuum_analyze_threshold = 5000,
                                autovacuum_vacuum_threshold = 5000,
                                autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE case_record SET (autovacuum_analyze_threshold = 5000,
                             autovacuum_vacuum_threshold = 5000,
                             autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE inspection_result SET (autovacuum_analyze_threshold = 5000,
                                   autovacuum_vacuum_threshold = 5000,
                                   autovacuum_vacuum_insert_threshold = 5000);
ALTER TABLE deadline_event SET (autovacuum_analyze_threshold = 5000,
                                autovacuum_vacuum_threshold = 5000,
                                autovacuum_vacuum_insert_threshold = 5000);
