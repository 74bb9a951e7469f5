// go_forkexec: Go's syscall.ForkExec + Wait4 on one ProcAttr read as JSON from stdin, the Go side of
// tests/test_go_differential.py (py_forkexec.py is the Python side; both read the same document).
//
// Files, Ctty (a string) and CgroupFD name fds this program opens: "in", "out", "err" (its own 0, 1, 2),
// "null" (/dev/null), "fa" (the file named by $H_FA), "pty" (a new pty's slave, O_NOCTTY), "cg" (the
// cgroup directory named by $H_CG), "hi" ($H_FA read-only at fd 40). With "session": true it first makes a session of its own whose
// controlling terminal is that pty; "pgid": "caller" is its own process group. A number in Files is a hole (-1) or taken as is. Prints one JSON
// line: {"status": the wait status} once the program ran, {"errno": n} when ForkExec returned an
// Errno, {"error": text} for its other errors.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

type idMap [3]int

type doc struct {
	Session bool              `json:"session"`
	Argv0   string            `json:"argv0"`
	Argv    []string          `json:"argv"`
	Dir     string            `json:"dir"`
	Env     []string          `json:"env"`
	Files   []json.RawMessage `json:"files"`
	Sys     struct {
		Chroot     string `json:"chroot"`
		Credential *struct {
			Uid, Gid    uint32
			Groups      []uint32 `json:"groups"`
			NoSetGroups bool     `json:"no_setgroups"`
		} `json:"credential"`
		Setsid                     bool            `json:"setsid"`
		Setpgid                    bool            `json:"setpgid"`
		Pgid                       json.RawMessage `json:"pgid"`
		Setctty                    bool            `json:"setctty"`
		Noctty                     bool            `json:"noctty"`
		Ctty                       json.RawMessage `json:"ctty"`
		Foreground                 bool            `json:"foreground"`
		Pdeathsig                  int             `json:"pdeathsig"`
		Cloneflags                 uintptr         `json:"cloneflags"`
		Unshareflags               uintptr         `json:"unshareflags"`
		UidMappings                []idMap         `json:"uid_mappings"`
		GidMappings                []idMap         `json:"gid_mappings"`
		GidMappingsEnableSetgroups bool            `json:"gid_mappings_enable_setgroups"`
		AmbientCaps                []uintptr       `json:"ambient_caps"`
		UseCgroupFD                bool            `json:"use_cgroup_fd"`
		CgroupFD                   json.RawMessage `json:"cgroup_fd"`
		PidFD                      bool            `json:"pidfd"`
	} `json:"sys"`
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go_forkexec:", err)
	os.Exit(2)
}

func openpty() int {
	m, err := syscall.Open("/dev/ptmx", syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(m), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		fail(e)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(m), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		fail(e)
	}
	s, err := syscall.Open(fmt.Sprintf("/dev/pts/%d", n), syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		fail(err)
	}
	return s
}

var opened = map[string]int{"in": 0, "out": 1, "err": 2}

func fd(raw json.RawMessage) int {
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return n
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		fail(err)
	}
	if f, ok := opened[name]; ok {
		return f
	}
	var f int
	var err error
	switch name {
	case "null":
		f, err = syscall.Open("/dev/null", syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	case "fa":
		f, err = syscall.Open(os.Getenv("H_FA"), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	case "cg":
		f, err = syscall.Open(os.Getenv("H_CG"), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	case "pty":
		f = openpty()
	case "hi":
		f, err = syscall.Open(os.Getenv("H_FA"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			err = syscall.Dup3(f, 40, syscall.O_CLOEXEC)
			syscall.Close(f)
			f = 40
		}
	default:
		fail(fmt.Errorf("unknown fd %q", name))
	}
	if err != nil {
		fail(fmt.Errorf("%s: %w", name, err))
	}
	opened[name] = f
	return f
}

func maps(in []idMap) []syscall.SysProcIDMap {
	if in == nil {
		return nil
	}
	out := []syscall.SysProcIDMap{}
	for _, m := range in {
		out = append(out, syscall.SysProcIDMap{ContainerID: m[0], HostID: m[1], Size: m[2]})
	}
	return out
}

func main() {
	var d doc
	if err := json.NewDecoder(os.Stdin).Decode(&d); err != nil {
		fail(err)
	}
	s := d.Sys
	if d.Session { // a session of its own with the pty as its controlling terminal
		if _, err := syscall.Setsid(); err != nil {
			fail(err)
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd(json.RawMessage(`"pty"`))), syscall.TIOCSCTTY, 0); e != 0 {
			fail(e)
		}
	}
	sys := &syscall.SysProcAttr{
		Chroot: s.Chroot, Setsid: s.Setsid, Setpgid: s.Setpgid, Setctty: s.Setctty,
		Noctty: s.Noctty, Foreground: s.Foreground, Pdeathsig: syscall.Signal(s.Pdeathsig),
		Cloneflags: s.Cloneflags, Unshareflags: s.Unshareflags, UidMappings: maps(s.UidMappings),
		GidMappings: maps(s.GidMappings), GidMappingsEnableSetgroups: s.GidMappingsEnableSetgroups,
		AmbientCaps: s.AmbientCaps, UseCgroupFD: s.UseCgroupFD,
	}
	if string(s.Pgid) == `"caller"` {
		sys.Pgid = syscall.Getpgrp()
	} else if len(s.Pgid) > 0 {
		sys.Pgid = fd(s.Pgid)
	}
	if s.Credential != nil {
		c := s.Credential
		sys.Credential = &syscall.Credential{Uid: c.Uid, Gid: c.Gid, Groups: c.Groups, NoSetGroups: c.NoSetGroups}
	}
	if len(s.Ctty) > 0 {
		sys.Ctty = fd(s.Ctty)
	}
	if len(s.CgroupFD) > 0 {
		sys.CgroupFD = fd(s.CgroupFD)
	}
	pidfd := -2
	if s.PidFD {
		sys.PidFD = &pidfd
	}
	files := []uintptr{}
	for _, f := range d.Files {
		files = append(files, uintptr(fd(f)))
	}
	attr := &syscall.ProcAttr{Dir: d.Dir, Env: d.Env, Files: files, Sys: sys}
	if d.Env == nil {
		attr.Env = nil
	}
	pid, err := syscall.ForkExec(d.Argv0, d.Argv, attr)
	out := map[string]any{}
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			out["errno"] = int(e)
		} else {
			out["error"] = err.Error()
		}
	} else {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			out["wait_errno"] = int(err.(syscall.Errno))
		} else {
			out["status"] = int(ws)
		}
		if s.PidFD && pidfd >= 0 {
			syscall.Close(pidfd)
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
