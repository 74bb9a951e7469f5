// go_spawn: Go's syscall.ForkExec + Wait4 timed per spawn, the Go reference of benchmarks/spawn.py.
//
//	go_spawn [-n N] [-f FLAGS] [-m BYTES] PROG [ARGS...]   one-shot: prints the median ns/spawn
//	go_spawn -s [-m BYTES]                                 serve: same protocol as c_spawn.c
//
// With CLONE_NEWUSER in FLAGS the child gets uid 0 -> our uid and gid 0 -> our gid (setgroups
// "deny", Go's default); Go then clones without CLONE_VM|CLONE_VFORK, a copying fork. Serve mode
// reads "N FLAGS MODE PROG [ARGS...]" lines (MODE is ignored) and answers N per-spawn times in ns;
// "mem BYTES" (re)sizes the held memory and answers "ok".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const madvPopulateWrite = 23 // Linux 5.14+; without it the loop below faults the pages in

var held []byte

func holdMemory(size int) {
	if held != nil {
		syscall.Munmap(held)
		held = nil
	}
	if size == 0 {
		return
	}
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		fail(err)
	}
	syscall.Madvise(b, syscall.MADV_NOHUGEPAGE)
	syscall.Madvise(b, madvPopulateWrite)
	for off := 0; off < size; off += 4096 {
		b[off] = 1
	}
	held = b
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go_spawn:", err)
	os.Exit(2)
}

func spawnOnce(argv []string, flags uintptr) int64 {
	sys := &syscall.SysProcAttr{Cloneflags: flags}
	if flags&syscall.CLONE_NEWUSER != 0 {
		sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	attr := &syscall.ProcAttr{Env: []string{}, Files: []uintptr{0, 1, 2}, Sys: sys}
	t0 := time.Now()
	pid, err := syscall.ForkExec(argv[0], argv, attr)
	if err != nil {
		fail(err)
	}
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil || ws.ExitStatus() != 0 {
		fail(fmt.Errorf("%s: wait %v status %v", argv[0], err, ws))
	}
	return time.Since(t0).Nanoseconds()
}

func serve() {
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		tok := strings.Fields(in.Text())
		switch {
		case len(tok) == 2 && tok[0] == "mem":
			size, err := strconv.ParseInt(tok[1], 0, 64)
			if err != nil {
				fail(err)
			}
			holdMemory(int(size))
			fmt.Fprintln(out, "ok")
		case len(tok) >= 4:
			n, err1 := strconv.Atoi(tok[0])
			flags, err2 := strconv.ParseUint(tok[1], 0, 64)
			if err1 != nil || err2 != nil {
				fail(fmt.Errorf("bad command %q", in.Text()))
			}
			times := make([]string, n)
			for i := range times {
				times[i] = strconv.FormatInt(spawnOnce(tok[3:], uintptr(flags)), 10)
			}
			fmt.Fprintln(out, strings.Join(times, " "))
		default:
			fail(fmt.Errorf("bad command %q", in.Text()))
		}
		out.Flush()
	}
}

func main() {
	n := flag.Int("n", 1000, "spawns")
	flags := flag.String("f", "0", "clone flags")
	mem := flag.Int64("m", 0, "bytes of touched memory to hold")
	serving := flag.Bool("s", false, "serve commands from stdin")
	flag.Parse()
	holdMemory(int(*mem))
	if *serving {
		serve()
		return
	}
	cf, err := strconv.ParseUint(*flags, 0, 64)
	if err != nil || flag.NArg() == 0 || *n < 1 {
		fail(fmt.Errorf("usage: go_spawn [-n N] [-f FLAGS] [-m BYTES] PROG [ARGS...] | -s [-m BYTES]"))
	}
	times := make([]int64, *n)
	for i := range times {
		times[i] = spawnOnce(flag.Args(), uintptr(cf))
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("%d ns/spawn (median of %d)\n", times[*n/2], *n)
}
