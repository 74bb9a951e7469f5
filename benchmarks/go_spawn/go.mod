module pyforkexec/benchmarks/go_spawn

go 1.23
