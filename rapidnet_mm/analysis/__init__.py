"""Research analysis: MAC counts, the latency benchmark against the paper's peers, result
tables and the GPU check. Nothing here is needed to train, evaluate or export."""
