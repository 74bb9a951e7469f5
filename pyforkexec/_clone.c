/*
 * pyforkexec._clone: the raw clone(2) system call behind pyforkexec.clone(fn, flags).
 *
 * Unlike _child.c, this child shares no memory: without CLONE_VM and with a NULL stack the kernel
 * gives it a copy-on-write copy of this process, stack included, as fork() does, so the child
 * returns from the system call and goes on running Python. Around the call runs CPython's own fork
 * protocol, as os.fork does (PyOS_BeforeFork / PyOS_AfterFork_Parent / PyOS_AfterFork_Child, stable
 * ABI since 3.7): the import lock is held across the call, and os.register_at_fork hooks run.
 *
 * What the C library's fork() adds and a raw clone cannot (its pthread_atfork handlers, its reset of
 * malloc and stdio locks held by other threads) is skipped, exactly as glibc's clone() wrapper skips
 * it; clone.py warns about threads as os.fork does.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Both take (flags, stack, parent_tid, child_tid|tls, tls|child_tid); only flags and parent_tid are
 * non-zero here, so the order of the last two does not matter. s390's order starts with the stack. */
#if !defined(__x86_64__) && !defined(__aarch64__)
#error "pyforkexec._clone supports x86_64 and aarch64"
#endif

/* clone(flags, child) -> (pid, pidfd) in the parent. The child calls child() and _exits with its
 * result (an int, masked to 0..255), so it never returns into the caller's Python stack; an exception
 * that escapes child() is printed and the child exits 1. With CLONE_PIDFD in flags the kernel writes
 * the child's pidfd (O_CLOEXEC, in this process only) where parent_tid points, the caller's to close;
 * -1 without it, or from a kernel before 5.2, which ignores the flag in clone(2). */
static PyObject *py_clone(PyObject *self, PyObject *args)
{
    unsigned long flags;
    PyObject *child, *result;
    long pid, status;
    int saved_errno, pidfd = -1;

    if (!PyArg_ParseTuple(args, "kO:clone", &flags, &child))
        return NULL;
    if (!PyCallable_Check(child)) {
        PyErr_SetString(PyExc_TypeError, "clone: child must be callable");
        return NULL;
    }
    /* CPython refuses os.fork in subinterpreters (3.8-3.11) or allows it per interpreter (3.12+, an
     * internal flag): only the main interpreter (id 0) may clone here. */
    if (PyInterpreterState_GetID(PyInterpreterState_Get()) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "clone: only the main interpreter can clone");
        return NULL;
    }

    PyOS_BeforeFork();
    pid = syscall(SYS_clone, flags, NULL, &pidfd, NULL, NULL);
    saved_errno = errno;
    if (pid == 0) {
        PyOS_AfterFork_Child();
        status = 1;
        result = PyObject_CallObject(child, NULL);
        if (result) {
            status = PyLong_AsLong(result);
            Py_DECREF(result);
        }
        if (PyErr_Occurred()) {
            PyErr_WriteUnraisable(child);
            status = 1;
        }
        _exit((int)(status & 0xFF));
    }
    PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    result = Py_BuildValue("(li)", pid, pidfd);
    if (result == NULL && pidfd >= 0)
        close(pidfd);  /* the pid is lost with it: as any failure of the call, after the child exists */
    return result;
}

static PyMethodDef methods[] = {
    {"clone", py_clone, METH_VARARGS, "clone(flags, child) -> (pid, pidfd); the child runs child() and _exits with its int"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pyforkexec._clone", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__clone(void)
{
    return PyModule_Create(&module);
}
