// Network calls a deny rule on an address and port must stop (tests/sources/bpf/net_kernel_test.ts):
//   net_attack race OKPORT DENYPORT TRIES   UDP connects to 127.0.0.1 while a thread flips the port in the
//                                          sockaddr between OKPORT and DENYPORT; prints how many connects
//                                          reached DENYPORT (getpeername): a win against a check made before
//                                          the kernel copied the address
//   net_attack MODE PORT [ADDR]             one call to ADDR (default 127.0.0.1):PORT, after binding a receiver
//                                          there: MODE is connect (TCP), udpconnect, sendto, sendmsg, sendmmsg,
//                                          iouring (IORING_OP_CONNECT, TCP) or connect6 (TCP to ::ffff:ADDR);
//                                          prints "MODE ok [received]" or "MODE errno N" (or "MODE setup errno N")
//   net_attack loop PORT N                  N UDP connects to 127.0.0.1:PORT (socket, connect, close): prints the
//                                          nanoseconds each took (bench/net_bench.ts)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in shared;
static atomic_int stop;
static unsigned short ok_port, deny_port;

static void *flipper(void *arg)
{
	(void)arg;
	volatile unsigned short *port = &shared.sin_port;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		*port = htons(ok_port);
		*port = htons(deny_port);
	}
	return NULL;
}

static int race(int tries)
{
	pthread_t t;
	int wins = 0, denied = 0, ok = 0, other = 0;
	shared.sin_family = AF_INET;
	shared.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	shared.sin_port = htons(ok_port);
	pthread_create(&t, NULL, flipper, NULL);
	for (int i = 0; i < tries; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0) {
			perror("socket");
			return 2;
		}
		if (connect(fd, (struct sockaddr *)&shared, sizeof(shared)) == 0) {
			struct sockaddr_in peer;
			socklen_t len = sizeof(peer);
			getpeername(fd, (struct sockaddr *)&peer, &len);
			if (ntohs(peer.sin_port) == deny_port)
				wins++;
			else
				ok++;
		} else if (errno == EPERM) {
			denied++;
		} else {
			other++;
		}
		close(fd);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("tries %d wins %d denied %d ok %d other %d\n", tries, wins, denied, ok, other);
	return 0;
}

/* A receiver at the destination (a bound UDP socket, or a listening TCP one), or -1 for an address not local. */
static int receiver(int type, const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, type, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)to, sizeof(*to)) < 0) {
		if (errno == EADDRNOTAVAIL) {
			close(fd);
			return -1;
		}
		perror("bind");
		exit(2);
	}
	if (type == SOCK_STREAM)
		listen(fd, 4);
	return fd;
}

static int received(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16];
	return fd >= 0 && poll(&p, 1, 500) == 1 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0;
}

static int uring_connect(int fd, const struct sockaddr_in *to, int *setup_errno)
{
	struct io_uring_params params;
	memset(&params, 0, sizeof(params));
	int ring = syscall(SYS_io_uring_setup, 4, &params);
	if (ring < 0) {
		*setup_errno = errno;
		return -1;
	}
	size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
	size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	char *cq = mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	struct io_uring_sqe *sqes = mmap(NULL, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
					 MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	unsigned *tail = (unsigned *)(sq + params.sq_off.tail);
	unsigned mask = *(unsigned *)(sq + params.sq_off.ring_mask);
	unsigned *array = (unsigned *)(sq + params.sq_off.array);
	unsigned idx = *tail & mask;
	struct io_uring_sqe *sqe = &sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_CONNECT;
	sqe->fd = fd;
	sqe->addr = (unsigned long)to;
	sqe->off = sizeof(*to);
	array[idx] = idx;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		perror("io_uring_enter");
		exit(2);
	}
	unsigned *head = (unsigned *)(cq + params.cq_off.head);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
	unsigned cmask = *(unsigned *)(cq + params.cq_off.ring_mask);
	int res = cqes[*head & cmask].res;
	__atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
	return res;
}

static void result(const char *mode, int r, int got)
{
	if (r < 0)
		printf("%s errno %d\n", mode, errno);
	else
		printf("%s ok%s\n", mode, got ? " received" : "");
}

static int loop(unsigned short port, int n)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timespec a, b;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0) {
			perror("connect");
			return 1;
		}
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("ns_per_connect %.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}

/*
 * Sockets that cross the tree's border (rt8 F2, F3): made by one process, used by another that is (or is not) in the
 * watched tree. mkfd makes a UDP socket as fd 3 and execs a command (which inherits it); scm-serve makes one and hands
 * it over a unix socket (SCM_RIGHTS) to one client; sendfd and scm-sendto send a datagram on such a socket.
 */
static int send_on(const char *mode, int fd, unsigned short port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rx = receiver(SOCK_DGRAM, &to);
	int r = sendto(fd, "hello", 5, 0, (struct sockaddr *)&to, sizeof(to));
	result(mode, r, r >= 0 && received(rx));
	return 0;
}

static int scm_serve(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	int udp = socket(AF_INET, SOCK_DGRAM, 0), l = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(path);
	if (udp < 0 || bind(l, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(l, 1) < 0) {
		perror("scm-serve");
		return 2;
	}
	chmod(path, 0777);
	printf("scm-serve ready\n");
	fflush(stdout);
	int c = accept(l, NULL, NULL);
	char one = 1, cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &one, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &udp, sizeof(int));
	if (sendmsg(c, &mh, 0) < 0) {
		perror("scm-serve sendmsg");
		return 2;
	}
	char done;
	read(c, &done, 1); /* until the client is done with the socket */
	unlink(path);
	return 0;
}

static int scm_sendto(const char *path, unsigned short port)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&un, sizeof(un)) < 0) {
		perror("scm-sendto connect");
		return 2;
	}
	char one, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = &one, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd = -1;
	if (recvmsg(c, &mh, 0) < 1 || !(cm = CMSG_FIRSTHDR(&mh)) || cm->cmsg_type != SCM_RIGHTS) {
		fprintf(stderr, "scm-sendto: no fd received\n");
		return 2;
	}
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	send_on("scm-sendto", fd, port);
	close(c);
	return 0;
}

/*
 * A UDP datagram built by hand on a raw socket (root; rt8 F4): no sock_addr hook sees a raw socket's destination.
 * rawudp sends it to 127.0.0.1:PORT; packet only creates an AF_PACKET socket (which could send any frame).
 */
static int raw_udp(unsigned short port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rx = receiver(SOCK_DGRAM, &to);
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
	if (fd < 0) {
		printf("rawudp socket errno %d\n", errno);
		return 0;
	}
	unsigned char pkt[8 + 5] = { 0 };
	unsigned short sport = htons(40000), dport = htons(port), len = htons(sizeof(pkt));
	memcpy(pkt, &sport, 2);
	memcpy(pkt + 2, &dport, 2);
	memcpy(pkt + 4, &len, 2); /* checksum 0: none, allowed for UDP over IPv4 */
	memcpy(pkt + 8, "hello", 5);
	int r = sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, sizeof(to));
	result("rawudp", r, r >= 0 && received(rx));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "rawudp") == 0)
		return raw_udp(atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "packet") == 0) {
		int fd = socket(17 /* AF_PACKET */, SOCK_DGRAM, 0);
		result("packet", fd, 0);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "mkfd") == 0) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		if (fd < 0 || dup2(fd, 3) < 0) {
			perror("mkfd");
			return 2;
		}
		execvp(argv[2], argv + 2);
		perror("mkfd exec");
		return 2;
	}
	if (argc == 3 && strcmp(argv[1], "sendfd") == 0)
		return send_on("sendfd", 3, atoi(argv[2]));
	if (argc == 3 && strcmp(argv[1], "scm-serve") == 0)
		return scm_serve(argv[2]);
	if (argc == 4 && strcmp(argv[1], "scm-sendto") == 0)
		return scm_sendto(argv[2], atoi(argv[3]));
	if (argc == 4 && strcmp(argv[1], "loop") == 0)
		return loop(atoi(argv[2]), atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "race") == 0) {
		ok_port = atoi(argv[2]);
		deny_port = atoi(argv[3]);
		return race(atoi(argv[4]));
	}
	if (argc < 3) {
		fprintf(stderr, "usage: net_attack race OKPORT DENYPORT TRIES | net_attack MODE PORT [ADDR]\n");
		return 2;
	}
	const char *mode = argv[1];
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
	inet_pton(AF_INET, argc > 3 ? argv[3] : "127.0.0.1", &to.sin_addr);
	char msg[] = "hello";
	/* The v4-mapped form of the address (::ffff:a.b.c.d): an AF_INET6 socket reaches the IPv4 host (rt8 F1). */
	struct sockaddr_in6 to6 = { .sin6_family = AF_INET6, .sin6_port = to.sin_port };
	to6.sin6_addr.s6_addr[10] = 0xff;
	to6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&to6.sin6_addr.s6_addr[12], &to.sin_addr, 4);
	int v6 = strcmp(mode, "connect6") == 0 || strcmp(mode, "tfo6") == 0 || strcmp(mode, "mptcp6") == 0;
	if (strcmp(mode, "connect") == 0 || strcmp(mode, "iouring") == 0 || v6) {
		int rx = receiver(SOCK_STREAM, &to);
		int r;
		if (strcmp(mode, "tfo6") == 0) {
			/* TCP Fast Open: the connect happens inside sendto (MSG_FASTOPEN). */
			int fd = socket(AF_INET6, SOCK_STREAM, 0);
			r = sendto(fd, msg, sizeof(msg), MSG_FASTOPEN, (struct sockaddr *)&to6, sizeof(to6));
		} else if (strcmp(mode, "mptcp6") == 0) {
			int fd = socket(AF_INET6, SOCK_STREAM, 262 /* IPPROTO_MPTCP */);
			if (fd < 0) {
				printf("mptcp6 socket errno %d\n", errno);
				return 0;
			}
			r = connect(fd, (struct sockaddr *)&to6, sizeof(to6));
		} else if (strcmp(mode, "connect6") == 0) {
			int fd = socket(AF_INET6, SOCK_STREAM, 0);
			r = connect(fd, (struct sockaddr *)&to6, sizeof(to6));
		} else if (strcmp(mode, "iouring") == 0) {
			int fd = socket(AF_INET, SOCK_STREAM, 0), setup_errno = 0;
			r = uring_connect(fd, &to, &setup_errno);
			if (setup_errno) {
				printf("iouring setup errno %d\n", setup_errno);
				return 0;
			}
			if (r < 0) {
				errno = -r;
				r = -1;
			}
		} else {
			int fd = socket(AF_INET, SOCK_STREAM, 0);
			r = connect(fd, (struct sockaddr *)&to, sizeof(to));
		}
		result(mode, r, 0);
		close(rx);
		return 0;
	}
	int rx = receiver(SOCK_DGRAM, &to);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), r;
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct msghdr mh = { .msg_name = &to, .msg_namelen = sizeof(to), .msg_iov = &iov, .msg_iovlen = 1 };
	if (strcmp(mode, "udpconnect") == 0) {
		r = connect(fd, (struct sockaddr *)&to, sizeof(to));
		if (r == 0)
			r = send(fd, msg, sizeof(msg), 0);
	} else if (strcmp(mode, "sendto6") == 0) {
		int fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
		r = sendto(fd6, msg, sizeof(msg), 0, (struct sockaddr *)&to6, sizeof(to6));
	} else if (strcmp(mode, "sendto") == 0) {
		r = sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&to, sizeof(to));
	} else if (strcmp(mode, "sendmsg") == 0) {
		r = sendmsg(fd, &mh, 0);
	} else if (strcmp(mode, "sendmmsg") == 0) {
		struct mmsghdr mm = { .msg_hdr = mh };
		r = sendmmsg(fd, &mm, 1, 0);
		if (r == 0) /* nothing sent without an error would be odd: report it */
			r = -1;
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	result(mode, r, r >= 0 && received(rx));
	return 0;
}
