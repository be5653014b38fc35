#define _GNU_SOURCE
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <time.h>
#include <pthread.h>
static volatile int stop;
static void *spin(void *a) { while (!stop) ; return 0; }
static void *sleeper(void *a) { while (!stop) usleep(1000); return 0; }
static long ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
int main(int c, char **v) {
  syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0);
  pthread_t t; pthread_create(&t, 0, c > 1 ? spin : sleeper, 0);
  usleep(10000);
  long t0 = ns(); for (int i = 0; i < 100000; i++) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0);
  long t1 = ns(); for (int i = 0; i < 100000; i++) syscall(SYS_getppid);
  long t2 = ns();
  printf("%s other thread: membarrier %.2f us, getppid %.2f us\n", c > 1 ? "running" : "sleeping", (t1-t0)/1e5/1e3, (t2-t1)/1e5/1e3);
  stop = 1; pthread_join(t, 0);
}
