-- The frames of each query-log spool file (run) already stored: the
-- query-log writer adds a frame's number here in the transaction that
-- stores its rows, so a frame is never stored twice (sent again after the
-- writer died, or read back from a spool left by a daemon that was
-- killed).  done: sorted intervals of frame numbers ("1-250,252-260").
CREATE TABLE query_log_spool (
    run TEXT PRIMARY KEY,
    done TEXT NOT NULL
);
