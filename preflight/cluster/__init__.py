"""The fleet view: many node reports in, failing nodes and drift from their peers out.

Modules, one job each: `sources` (arguments → report inputs), `record` (one report → a node
record and its facts), `rules` (which facts are naturally unique per node), `aggregate` (facts of
many nodes, in parallel, → value → nodes per fact), `drift` and `failures` (pure judgements),
`compare` (the whole comparison and its exit rule), `render` (table and JSON), `hostlist`
(Slurm-style node lists), `genbaseline` (facts → baseline TOML).
"""
