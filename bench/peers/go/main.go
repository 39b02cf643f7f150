// go-bench: benchmark peer for bench/run, the workloads W1..W8 written as a
// Go user would write them. See ../README.md.
//
//	go-bench W1|W2|W3|W4|W5|W6|W7|W8 [N]    (only W3 uses N; default 100000)
package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func result(workload, metric string, value float64) {
	fmt.Printf("{\"impl\":\"go\",\"workload\":%q,\"metric\":%q,\"value\":%.2f}\n", workload, metric, value)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-bench: "+format+"\n", args...)
	os.Exit(1)
}

// monotonicNs reads CLOCK_MONOTONIC, the clock bench/run compares against.
func monotonicNs() int64 {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1 /* CLOCK_MONOTONIC */, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		fail("clock_gettime: %v", e)
	}
	return ts.Nano()
}

// rssBytes is VmRSS from /proc/self/status.
func rssBytes() int64 {
	return statusBytes("VmRSS")
}

// peakRSSBytes is VmHWM: getrusage's Maxrss carries over an exec from the
// process that forked (bench/run, a Python of 14 MB), so no smaller peak
// would show.
func peakRSSBytes() int64 {
	return statusBytes("VmHWM")
}

// statusBytes is a "key: N kB" line of /proc/self/status, in bytes.
func statusBytes(key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fail("%v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				fail("%s: %v", key, err)
			}
			return kb * 1024
		}
	}
	fail("no %s in /proc/self/status", key)
	return 0
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// W1: 100 goroutines, each yields 10,000 times.
func w1() {
	const tasks, yields = 100, 10000
	var wg sync.WaitGroup
	var count atomic.Int64
	start := make(chan struct{})
	for i := 0; i < tasks; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < yields; j++ {
				runtime.Gosched()
				count.Add(1)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if n := count.Load(); n != tasks*yields {
		fail("W1: %d yields, want %d", n, tasks*yields)
	}
	result("W1", "ns_per_yield", float64(elapsed.Nanoseconds())/(tasks*yields))
}

// W2: spawn 100,000 goroutines that return at once, then wait for them all.
func w2() {
	const tasks = 100000
	var wg sync.WaitGroup
	var done atomic.Int64
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		wg.Add(1)
		go func() {
			done.Add(1)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if n := done.Load(); n != tasks {
		fail("W2: %d goroutines ran, want %d", n, tasks)
	}
	result("W2", "ns_per_task", float64(elapsed.Nanoseconds())/tasks)
	result("W2", "peak_rss_bytes", float64(peakRSSBytes()))
}

// W3: n goroutines wait on an event that is never set, then all are cancelled.
func w3(n int) {
	before := rssBytes()
	ctx, cancel := context.WithCancel(context.Background())
	event := make(chan struct{}) // never closed
	var ready, ended sync.WaitGroup
	var parked, gone atomic.Int64
	for i := 0; i < n; i++ {
		ready.Add(1)
		ended.Add(1)
		go func() {
			defer ended.Done()
			parked.Add(1)
			ready.Done()
			select {
			case <-ctx.Done():
			case <-event:
			}
			gone.Add(1)
		}()
	}
	ready.Wait()
	time.Sleep(10 * time.Millisecond) // let the last ones get from ready.Done into the select
	rss := rssBytes()
	if p := parked.Load(); p != int64(n) {
		fail("W3: %d parked, want %d", p, n)
	}
	t0 := time.Now()
	cancel()
	ended.Wait()
	elapsed := time.Since(t0)
	if g := gone.Load(); g != int64(n) {
		fail("W3: %d goroutines ended, want %d", g, n)
	}
	result("W3", "parked", float64(parked.Load()))
	result("W3", "bytes_per_task", float64(rss-before)/float64(n))
	result("W3", "ns_per_cancel", float64(elapsed.Nanoseconds())/float64(n))
}

// W4: 100,000 goroutines each sleep a random time below 1 s and record how late they woke.
func w4() {
	const tasks = 100000
	rng := rand.New(rand.NewSource(1))
	delay := make([]time.Duration, tasks)
	for i := range delay {
		delay[i] = time.Duration(rng.Int63n(int64(time.Second)))
	}
	late := make([]time.Duration, tasks)
	began := make([]time.Duration, tasks)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < tasks; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			at := time.Now()
			began[i] = at.Sub(t0)
			time.Sleep(delay[i])
			late[i] = time.Since(at) - delay[i] // the intended wake is delay after the sleep began
		}(i)
	}
	wg.Wait()
	total := time.Since(t0)
	var lastStart time.Duration
	for _, b := range began {
		if b > lastStart {
			lastStart = b
		}
	}
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	var sum time.Duration
	for _, l := range late {
		if l < 0 {
			fail("W4: woke %v early", -l)
		}
		sum += l
	}
	result("W4", "total_ms", ms(total))
	result("W4", "last_start_ms", ms(lastStart))
	result("W4", "mean_late_ms", ms(sum)/tasks)
	result("W4", "p99_late_ms", ms(late[tasks*99/100]))
	result("W4", "max_late_ms", ms(late[tasks-1]))
}

// W5: on SIGTERM, cancel the unshielded goroutines and let the shielded ones finish.
func w5() {
	const unshielded, shielded = 10000, 1000
	tmp, err := os.CreateTemp("", "go-bench-w5-")
	if err != nil {
		fail("%v", err)
	}
	name := tmp.Name()
	tmp.Close()
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		os.Remove(name)
		fail("%v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var uwg, swg sync.WaitGroup
	var ended, failed atomic.Int64
	for i := 0; i < unshielded; i++ {
		uwg.Add(1)
		go func() {
			defer uwg.Done()
			<-ctx.Done()
			ended.Add(1)
		}()
	}
	for i := 0; i < shielded; i++ {
		swg.Add(1)
		go func(i int) { // does not watch ctx: survives the shutdown
			defer swg.Done()
			time.Sleep(200 * time.Millisecond)
			if _, err := fmt.Fprintf(out, "shielded %d done\n", i); err != nil {
				failed.Add(1)
			}
		}(i)
	}

	time.Sleep(50 * time.Millisecond)
	request := monotonicNs()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		fail("kill: %v", err)
	}
	<-ctx.Done()
	uwg.Wait()
	unshieldedDone := monotonicNs()
	swg.Wait()
	closeErr := out.Close()
	data, readErr := os.ReadFile(name)
	os.Remove(name)

	lines := bytes.Count(data, []byte("\n"))
	switch {
	case failed.Load() > 0 || closeErr != nil || readErr != nil:
		fail("W5: %d writes failed; close: %v; read: %v", failed.Load(), closeErr, readErr)
	case ended.Load() != unshielded:
		fail("W5: %d unshielded goroutines ended, want %d", ended.Load(), unshielded)
	case lines != shielded:
		fail("W5: %d lines in the file, want %d", lines, shielded)
	}
	result("W5", "request_ns", float64(request))
	result("W5", "unshielded_done_ms", float64(unshieldedDone-request)/1e6)
	result("W5", "lines", float64(lines))
}

// gate is what the W6 loops wait at while paused.
type gate struct {
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
}

func newGate() *gate {
	g := &gate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gate) set(paused bool) {
	g.mu.Lock()
	g.paused = paused
	g.mu.Unlock()
	if !paused {
		g.cond.Broadcast()
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	for g.paused {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// W6: 1,000 loops tick every 1 ms; pause them at 200 ms for 200 ms, then run 200 ms more.
func w6() {
	const tasks = 1000
	ctx, cancel := context.WithCancel(context.Background())
	g := newGate()
	var ticks atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < tasks; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				g.wait()
				time.Sleep(time.Millisecond)
				ticks.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	g.set(true)
	atPause := ticks.Load()
	time.Sleep(200 * time.Millisecond)
	atResume := ticks.Load()
	g.set(false)
	time.Sleep(200 * time.Millisecond)
	atEnd := ticks.Load()
	cancel()
	wg.Wait()

	// At most one tick per loop can be in flight when the gate closes.
	if d := atResume - atPause; d > tasks {
		fail("W6: %d ticks while paused, at most %d expected", d, tasks)
	}
	if atEnd == atResume {
		fail("W6: no ticks after the resume")
	}
	result("W6", "ticks_after_pause", float64(atResume-atPause))
	result("W6", "ticks_after_resume", float64(atEnd-atResume))
}

// w7 is the TCP line-echo server: a goroutine per connection, as net's
// documentation has it. bench/loadgen measures it; it runs until killed.
func w7() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("W7: %v", err)
	}
	fmt.Printf("listening %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			fail("W7: accept: %v", err)
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					return
				}
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		}(c)
	}
}

const w8Rounds = 1000000

// w8pair runs two goroutines of fn to their end: ns per unit, of 2 *
// w8Rounds in all.
func w8pair(fn func(first bool)) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	for _, first := range []bool{true, false} {
		go func(first bool) {
			defer wg.Done()
			fn(first)
		}(first)
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / (2 * w8Rounds)
}

// w8 is channel ping-pong (unbuffered, and 64), a mutex handed back and
// forth, and the bare-yield baseline (runtime.Gosched).
func w8() {
	for _, c := range []struct {
		capacity int
		metric   string
	}{{0, "ns_per_msg_rendezvous"}, {64, "ns_per_msg_buffered64"}} {
		ping, pong := make(chan int, c.capacity), make(chan int, c.capacity)
		result("W8", c.metric, w8pair(func(first bool) {
			for i := 0; i < w8Rounds; i++ {
				if first {
					ping <- i
					<-pong
				} else {
					pong <- <-ping
				}
			}
		}))
	}
	var mu sync.Mutex
	result("W8", "ns_per_mutex_handoff", w8pair(func(bool) {
		for i := 0; i < w8Rounds; i++ {
			mu.Lock()
			runtime.Gosched()
			mu.Unlock()
		}
	}))
	result("W8", "ns_per_yield", w8pair(func(bool) {
		for i := 0; i < w8Rounds; i++ {
			runtime.Gosched()
		}
	}))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-bench W1|W2|W3|W4|W5|W6|W7|W8 [N]   (only W3 uses N: 100000 or 1000000)")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 {
		usage()
	}
	workload := os.Args[1]
	n := 100000
	if len(os.Args) == 3 { // only W3 uses N
		v, err := strconv.Atoi(os.Args[2])
		if err != nil || v < 1 {
			usage()
		}
		n = v
	}
	switch workload {
	case "W1":
		w1()
	case "W2":
		w2()
	case "W3":
		w3(n)
	case "W4":
		w4()
	case "W5":
		w5()
	case "W6":
		w6()
	case "W7":
		w7()
	case "W8":
		w8()
	default:
		usage()
	}
}
