"""
Filtering: blocklists, rules, local rewrites, client policies, protection
pause, query log and statistics.  See docs/FILTERING.md.

Pure parts (names, listformat, rulesyntax, schedule, policy, compiler) do
no I/O; engine, refresher and querylog are the edges that talk to the
store, the clock and the network.
"""
