module evtask-bench-peer

go 1.19
