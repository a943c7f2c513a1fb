module wlcg.soc/benchmarks/latency_proxy

go 1.21
