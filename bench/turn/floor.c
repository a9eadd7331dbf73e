// The kernel's floor for a UDP relay on this machine: what a process pays per relayed packet if
// it does nothing but the system calls a relay cannot avoid, one transmit (sendto) and one
// receive (recvmmsg, batched) per packet, with no TURN at all.
//
// It makes a relay's traffic without clients: a "listener" socket and one "relay" socket per
// client. Every interval each relay socket sends PEER_BYTES to the peer echo and the listener
// sends CLIENT_BYTES (the framed packet) to the client echo, as a relay forwarding both ways
// does; the echoes come back to the same sockets (the peer's to the relay sockets, one each, and
// the clients' to the listener, batched). Both echoes are turnutils_peer.
//
//     floor PEER_PORT CLIENT_ECHO_PORT CLIENTS MESSAGES INTERVAL_US PEER_BYTES CLIENT_BYTES
//
// Prints the packets sent and echoed and the CPU seconds (user + system) of this process per
// million packets sent. bench/turn/run compiles and runs it next to rallypoint and coturn.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define MAX_BYTES 2048

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    return a;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: floor PEER_PORT CLIENT_ECHO_PORT CLIENTS MESSAGES INTERVAL_US "
                        "PEER_BYTES CLIENT_BYTES\n");
        return 2;
    }
    struct sockaddr_in peer = loopback(atoi(argv[1])), client = loopback(atoi(argv[2]));
    int clients = atoi(argv[3]), messages = atoi(argv[4]), interval_us = atoi(argv[5]);
    int peer_bytes = atoi(argv[6]), client_bytes = atoi(argv[7]);
    if (clients < 1 || messages < 1 || interval_us < 1 || peer_bytes < 1 || client_bytes < 1 ||
        peer_bytes > MAX_BYTES || client_bytes > MAX_BYTES) {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }

    // Socket 0 is the listener, 1..clients the relay sockets; the timer paces the sends.
    int sockets = clients + 1, ep = epoll_create1(0);
    int *fds = calloc(sockets, sizeof(int));
    for (int i = 0; i < sockets; i++) {
        struct sockaddr_in any = loopback(0);
        fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&any, sizeof any)) {
            perror("floor: socket");
            return 1;
        }
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    }
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct itimerspec every = {{0, interval_us * 1000L}, {0, interval_us * 1000L}};
    timerfd_settime(timer, 0, &every, NULL);
    struct epoll_event te = {.events = EPOLLIN, .data.u32 = sockets};
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &te);

    static char out[MAX_BYTES], in[BATCH][MAX_BYTES];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_in from[BATCH];
    long sent = 0, echoed = 0;
    int rounds = 0;
    // Bounded: the sends take MESSAGES intervals; echoes still on their way get two seconds.
    double deadline = now() + messages * (interval_us / 1e6) + 2;
    while (now() < deadline && (rounds < messages || echoed < sent)) {
        struct epoll_event ready[64];
        int k = epoll_wait(ep, ready, 64, 50);
        for (int j = 0; j < k; j++) {
            int i = ready[j].data.u32;
            if (i == sockets) {
                unsigned long long ticks;
                if (read(timer, &ticks, sizeof ticks) <= 0 || rounds == messages)
                    continue;
                for (int c = 1; c <= clients; c++) {
                    sent += sendto(fds[c], out, peer_bytes, 0, (struct sockaddr *)&peer,
                                   sizeof peer) == peer_bytes;
                    sent += sendto(fds[0], out, client_bytes, 0, (struct sockaddr *)&client,
                                   sizeof client) == client_bytes;
                }
                rounds++;
                continue;
            }
            int got;
            do {
                for (int b = 0; b < BATCH; b++) {
                    iov[b] = (struct iovec){in[b], MAX_BYTES};
                    msgs[b].msg_hdr = (struct msghdr){.msg_name = &from[b],
                                                      .msg_namelen = sizeof from[b],
                                                      .msg_iov = &iov[b],
                                                      .msg_iovlen = 1};
                }
                got = recvmmsg(fds[i], msgs, BATCH, MSG_DONTWAIT, NULL);
                if (got > 0)
                    echoed += got;
            } while (got == BATCH);
        }
    }
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    double cpu = seconds(r.ru_utime) + seconds(r.ru_stime);
    printf("sent=%ld echoed=%ld cpu=%.3f cpu_per_m=%.3f\n", sent, echoed, cpu,
           sent ? cpu / sent * 1e6 : 0.0);
    return 0;
}
