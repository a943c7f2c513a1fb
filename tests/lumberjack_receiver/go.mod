module wlcg.soc/tests/lumberjack_receiver

go 1.21

require github.com/elastic/go-lumber v0.1.0

require github.com/klauspost/compress v1.17.11 // indirect
