module go_forkexec

go 1.23
