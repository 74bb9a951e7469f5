/* A static /bin/true with no libc and no dynamic loader: `spawn.py --program static` uses it to show the
 * spawn machinery's own cost, which the ~0.5 ms of loading a dynamic /bin/true hides on slow machines. */
#include <sys/syscall.h>

void _start(void)
{
#if defined(__x86_64__)
    __asm__ volatile("syscall" : : "a"(SYS_exit_group), "D"(0) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = SYS_exit_group;
    register long x0 __asm__("x0") = 0;
    __asm__ volatile("svc #0" : : "r"(x8), "r"(x0) : "memory");
#else
#error "true_static.c: x86_64 or aarch64"
#endif
    for (;;)
        ;
}
