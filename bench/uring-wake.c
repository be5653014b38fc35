// A minimal proxy, to measure io_uring's wake-up paths without glommio or FlyTrap around
// them (bench/uring-wake.sh runs it; BENCHMARKS.md, "io_uring set-up flags, measured
// without glommio").
//
// Three processes over loopback TCP, closed loop: client -> middle -> end -> middle ->
// client, one byte each way. The end (a broker) waits with epoll. The middle (the proxy)
// waits for either of its two sockets with
//   0: epoll_wait,
//   1: io_uring POLL_ADD on a default ring (glommio 0.9's set-up),
//   2: io_uring with IORING_SETUP_COOP_TASKRUN,
//   3: io_uring with IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
// or mode 4: no middle (the client talks to the end directly: the baseline),
// then reads and writes with plain syscalls, as glommio does when a socket is ready.
// Printed: round-trip p50 and p99, the share of the middle's wake-ups that ran on the vCPU
// its waker last ran on (approximate: read from shared memory, unsynchronised), and the CPU
// time the middle and the end used per round trip.
//
//   uring-wake MODE ROUND_TRIPS [pin]     pin: client on CPU 0, middle and end on CPU 1
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include "liburing.h"
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)

static void on(int cpu) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s); sched_setaffinity(0, sizeof s, &s); }
static long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }
static int cmp(const void *a, const void *b) { long x = *(long *)a, y = *(long *)b; return x < y ? -1 : x > y; }
static void pair(int *x, int *y) {
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t al = sizeof a;
  bind(l, (void *)&a, sizeof a); listen(l, 1); getsockname(l, (void *)&a, &al);
  *x = socket(AF_INET, SOCK_STREAM, 0); connect(*x, (void *)&a, sizeof a); *y = accept(l, 0, 0); close(l);
  setsockopt(*x, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); setsockopt(*y, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
// shared: cpu of the last writer, and counters
struct sh { volatile int writer_cpu; long mid_wakes, mid_same, mid_cpu_ns, end_cpu_ns; };
static long cpu_ns(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec * 1000000000L + t.tv_nsec; }

int main(int argc, char **argv) {
  if (argc < 3 || atoi(argv[1]) < 0 || atoi(argv[1]) > 4 || atoi(argv[2]) < 1) {
    fprintf(stderr, "usage: uring-wake MODE(0-4) ROUND_TRIPS [pin]\n");
    return 64;
  }
  int mode = atoi(argv[1]), n = atoi(argv[2]), pin = argc > 3;
  struct sh *sh = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  long *rtt = malloc(n * sizeof(long));
  int c, m1 = -1, m2 = -1, e;
  if (mode == 4) pair(&c, &e); else { pair(&c, &m1); pair(&m2, &e); }
  if (fork() == 0) {  // end: echo with epoll
    if (pin) on(1);
    close(c); if (mode != 4) { close(m1); close(m2); }
    int ep = epoll_create1(0); struct epoll_event ev = {.events = EPOLLIN}; epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    char b[8];
    long c0 = cpu_ns();
    for (int i = 0; i < n; i++) { while (epoll_wait(ep, &ev, 1, -1) != 1) ; if (read(e, b, 1) != 1) exit(2); sh->writer_cpu = sched_getcpu(); if (write(e, b, 1) != 1) exit(3); }
    sh->end_cpu_ns = cpu_ns() - c0;
    exit(0);
  }
  if (mode != 4 && fork() == 0) {  // middle
    if (pin) on(1);
    close(c); close(e);
    char b[8]; int ep = -1; struct io_uring ring;
    if (mode == 0) { ep = epoll_create1(0); struct epoll_event ev = {.events = EPOLLIN, .data.fd = m1}; epoll_ctl(ep, EPOLL_CTL_ADD, m1, &ev); ev.data.fd = m2; epoll_ctl(ep, EPOLL_CTL_ADD, m2, &ev); }
    else {
      struct io_uring_params p; memset(&p, 0, sizeof p);
      if (mode == 2) p.flags = IORING_SETUP_COOP_TASKRUN;
      if (mode == 3) p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
      if (io_uring_queue_init_params(64, &ring, &p)) exit(1);
      for (int f = 0; f < 2; f++) { struct io_uring_sqe *q = io_uring_get_sqe(&ring); io_uring_prep_poll_add(q, f ? m2 : m1, POLLIN); io_uring_sqe_set_data(q, (void *)(long)(f ? m2 : m1)); }
      io_uring_submit(&ring);
    }
    long c0 = cpu_ns();
    for (int i = 0; i < 2 * n; i++) {
      int fd;
      if (mode == 0) { struct epoll_event ev; while (epoll_wait(ep, &ev, 1, -1) != 1) ; fd = ev.data.fd; }
      else { struct io_uring_cqe *cq; io_uring_submit_and_wait(&ring, 1); if (io_uring_wait_cqe(&ring, &cq)) exit(4); fd = (int)(long)io_uring_cqe_get_data(cq); io_uring_cqe_seen(&ring, cq);
             struct io_uring_sqe *q = io_uring_get_sqe(&ring); io_uring_prep_poll_add(q, fd, POLLIN); io_uring_sqe_set_data(q, (void *)(long)fd); }
      int me = sched_getcpu(); sh->mid_wakes++; sh->mid_same += me == sh->writer_cpu;
      if (read(fd, b, 1) != 1) exit(2);
      sh->writer_cpu = me;
      if (write(fd == m1 ? m2 : m1, b, 1) != 1) exit(3);
    }
    sh->mid_cpu_ns = cpu_ns() - c0;
    exit(0);
  }
  if (mode != 4) { close(m1); close(m2); }
  close(e);
  if (pin) on(0);
  char b[1] = {'x'};
  for (int i = 0; i < n; i++) { long t0 = now_ns(); sh->writer_cpu = sched_getcpu(); if (write(c, b, 1) != 1 || read(c, b, 1) != 1) return 4; rtt[i] = now_ns() - t0; }
  while (wait(0) > 0) ;
  qsort(rtt, n, sizeof(long), cmp);
  printf("middle %s: p50 %.1f us  p99 %.1f us  middle woken on its waker's vCPU %.0f %%  CPU per round trip: middle %.1f us, end %.1f us\n", (char *[]){"epoll", "io_uring", "io_uring coop", "io_uring defer", "none (direct)"}[mode], rtt[n / 2] / 1e3, rtt[n * 99 / 100] / 1e3, sh->mid_wakes ? 100.0 * sh->mid_same / sh->mid_wakes : 0.0, sh->mid_cpu_ns / 1e3 / n, sh->end_cpu_ns / 1e3 / n);
  return 0;
}
