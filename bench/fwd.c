// A minimal TCP forwarder, the floor for any proxy on this machine: it accepts on a port,
// dials an upstream per accepted connection, and copies bytes both ways, nothing more (no
// MQTT, no timers, one thread). bench/floor.sh puts it beside HAProxy and FlyTrap, between
// the same client and Mosquitto, to separate what FlyTrap costs from what any proxy that
// waits with the same kernel interface costs (BENCHMARKS.md, "The floor: a forwarder in C").
//
// It waits for its sockets with
//   epoll:   epoll_wait (HAProxy's way),
//   uring:   io_uring POLL_ADD on a default ring, a new poll armed after each read, the
//            polls submitted in the same io_uring_enter that waits (FlyTrap's way through
//            glommio, less glommio),
// then reads and writes with plain non-blocking system calls, as glommio does.
// BUSY_NS: a busy wait of that many ns after each forwarded read, before the next wait, to
// measure what a proxy's work between its send and its sleep does to where the kernel runs
// the peer it woke (BENCHMARKS.md, "The floor").
//
//   fwd epoll|uring LISTEN_PORT UPSTREAM_PORT [BUSY_NS]        (loopback only)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include "liburing.h"

#define MAX_FD 4096
static int peer[MAX_FD];           // fd -> the other side's fd, -1 when closed
static unsigned gen[MAX_FD];       // bumped when an fd number is taken again: a poll armed
                                   // for a closed socket completes with the old number
static char buf[65536];
static long busy_ns;

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  return a;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Accepts one client and dials the upstream for it; returns the client's fd or -1.
static int take_client(int listener, int upstream_port) {
  int c = accept4(listener, 0, 0, SOCK_NONBLOCK);
  if (c < 0) return -1;
  int u = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(upstream_port);
  if (u < 0 || c >= MAX_FD || u >= MAX_FD || connect(u, (void *)&a, sizeof a) < 0) {
    close(c);
    if (u >= 0) close(u);
    return -1;
  }
  fcntl(u, F_SETFL, O_NONBLOCK);
  nodelay(c);
  nodelay(u);
  peer[c] = u;
  peer[u] = c;
  gen[c]++;
  gen[u]++;
  return c;
}

// Copies what `fd` has to its peer; returns 0 while the pair lives, -1 once it is closed.
static int pump(int fd) {
  int to = peer[fd];
  if (to < 0) return -1;
  ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
  if (n > 0) {
    ssize_t off = 0;
    while (off < n) {  // small messages: a blocking retry loop is enough here
      ssize_t w = send(to, buf + off, n - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EAGAIN) { struct pollfd p = {to, POLLOUT, 0}; poll(&p, 1, -1); continue; }
      if (w <= 0) break;
      off += w;
    }
    if (off == n) {
      if (busy_ns) {
        long t0 = now_ns();
        while (now_ns() - t0 < busy_ns) {
        }
      }
      return 0;
    }
  }
  shutdown(fd, SHUT_RDWR);  // completes a poll still armed on either socket
  shutdown(to, SHUT_RDWR);
  close(fd);
  close(to);
  peer[fd] = peer[to] = -1;
  return -1;
}

static int run_epoll(int listener, int upstream_port) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  for (;;) {
    struct epoll_event got[64];
    int n = epoll_wait(ep, got, 64, -1);
    for (int i = 0; i < n; i++) {
      int fd = got[i].data.fd;
      if (fd == listener) {
        int c = take_client(listener, upstream_port);
        if (c < 0) continue;
        struct epoll_event e1 = {.events = EPOLLIN, .data.fd = c};
        struct epoll_event e2 = {.events = EPOLLIN, .data.fd = peer[c]};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e1);
        epoll_ctl(ep, EPOLL_CTL_ADD, peer[c], &e2);
      } else {
        pump(fd);  // close() removes a closed fd from the epoll set
      }
    }
  }
  return 0;
}

static void arm(struct io_uring *ring, int fd) {
  struct io_uring_sqe *q = io_uring_get_sqe(ring);
  if (!q) { io_uring_submit(ring); q = io_uring_get_sqe(ring); }
  io_uring_prep_poll_add(q, fd, POLLIN);
  q->user_data = (unsigned long long)gen[fd] << 32 | (unsigned)fd;  // liburing 0.x: no set_data64
}

static int run_uring(int listener, int upstream_port) {
  struct io_uring ring;
  if (io_uring_queue_init(256, &ring, 0)) { perror("io_uring_queue_init"); return 1; }
  arm(&ring, listener);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);  // the polls armed since the last wait, and the wait
    struct io_uring_cqe *cq;
    unsigned head, seen = 0;
    int ready[256], n = 0;
    io_uring_for_each_cqe(&ring, head, cq) {
      unsigned long long d = cq->user_data;
      int fd = (int)(unsigned)d;
      if (n < 256 && (fd == listener || (unsigned)(d >> 32) == gen[fd])) ready[n++] = fd;
      seen++;
    }
    io_uring_cq_advance(&ring, seen);
    for (int i = 0; i < n; i++) {
      int fd = ready[i];
      if (fd == listener) {
        int c = take_client(listener, upstream_port);
        if (c >= 0) { arm(&ring, c); arm(&ring, peer[c]); }
        arm(&ring, listener);
      } else if (pump(fd) == 0) {
        arm(&ring, fd);
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5 || (strcmp(argv[1], "epoll") && strcmp(argv[1], "uring")) ||
      atoi(argv[2]) <= 0 || atoi(argv[3]) <= 0 || (argc == 5 && atol(argv[4]) < 0)) {
    fprintf(stderr, "usage: fwd epoll|uring LISTEN_PORT UPSTREAM_PORT [BUSY_NS]\n");
    return 64;
  }
  busy_ns = argc == 5 ? atol(argv[4]) : 0;
  for (int i = 0; i < MAX_FD; i++) peer[i] = -1;
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = loopback(atoi(argv[2]));
  if (bind(l, (void *)&a, sizeof a) || listen(l, 128)) { perror("listen"); return 1; }
  return strcmp(argv[1], "epoll") ? run_uring(l, atoi(argv[3])) : run_epoll(l, atoi(argv[3]));
}
