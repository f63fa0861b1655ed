-- The query log is written for every DNS query: every index costs on each
-- row.  No query uses this one (the client filter is an OR with a name
-- substring, and statistics always select a time range: query_log_by_ts).
DROP INDEX query_log_by_client;
