/*
 * keepvip_agent.runtime._rxwatch: the receive thread of the VRRP sockets.
 *
 * Why this is C: a backup's whole job in steady state is to hear its master's
 * advertisement, the same bytes every interval, and restart its master-down
 * timer. In Python each such packet costs an event-loop wake-up (tens of
 * microseconds); with hundreds of instances that was two to five times
 * keepalived's CPU (issue 14, benchmarks/results/CHANGES.md). Here one thread,
 * without the GIL, reads every VRRP socket (recvmmsg), and a datagram that is
 * byte for byte the advertisement its instance accepted last ("expected")
 * only moves that instance's deadline. The thread also keeps those deadlines
 * (a timerfd at the earliest). Python hears only of what needs a decision:
 * any other datagram, in arrival order, and an expectation whose deadline
 * passed without its advertisement.
 *
 * No protocol rule lives here. What counts as a repeat is decided in Python
 * (runtime/instance.py: the router's advertisement_repeated short path, which a
 * property test checks against the full rules); this file only compares bytes
 * and clocks, and gives Python the counts and the last arrival when asked.
 * Times are CLOCK_MONOTONIC seconds: the same clock as time.monotonic() and
 * asyncio's loop.time().
 *
 * The same thread sends a master's periodic advertisements (scheduled from
 * Python with their bytes, destinations and interval): in steady state a
 * master's only work is that send, and Python's timer for it is the one
 * wake-up per advert the agent could not batch. Python takes the schedule
 * back (with how many went out and when the last was due) before anything
 * else reaches that instance's router; the router then knows its timer.
 *
 * The thread never touches a Python object; Python's calls take the engine's
 * mutex for a few microseconds. The wrapper is runtime/rxwatch.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32         /* datagrams per recvmmsg */
#define MAX_BATCHES 8    /* per socket per wake-up: level-triggered epoll comes back */
#define BUFSZ 2048       /* a VRRP datagram is < 1500 bytes (255 IPv6 addresses: 4 KB, refused) */
#define CTLSZ 128
#define MAX_QUEUE 4096 /* events waiting for Python (at most ~8 MB); beyond, datagrams are dropped and counted, as a full socket buffer would drop them */
#define KEYMAX (16 + 16 + 1 + BUFSZ)

enum { EV_PACKET = 0, EV_EXPIRED = 1, EV_RELEASED = 2, EV_CANCELLED = -1 };

typedef struct {
    int fd;
    int family;
    int slot_of[256]; /* VRID -> expecting slot, -1 */
} Sock;

typedef struct {
    unsigned char addr[16];
    unsigned char *payload;
    size_t len;
} Dest;

enum { MODE_EXPECT = 1, MODE_SEND = 2 };

typedef struct {
    int active; /* 0, MODE_EXPECT or MODE_SEND */
    int fd;
    int vrid;
    /* MODE_SEND: what to send (deadline_ns is the next due time, last_ns the last sent's due) */
    int family;
    int ifindex;
    unsigned char src[16];
    Dest *dests;
    size_t ndests;
    uint64_t errors;
    int last_errno;
    unsigned char *key;
    size_t keylen;
    uint64_t count; /* matches since the last peek */
    int64_t last_ns; /* last match, 0 none since expect */
    int64_t delta_ns;
    int64_t deadline_ns;
    int64_t early_ns; /* MODE_SEND: see SEND_EARLY_MAX_NS */
} Slot;

typedef struct {
    int kind;
    int fd_or_slot;
    uint64_t count;
    int64_t last_ns;
    unsigned char *data; /* datagram */
    size_t len;
    unsigned char *key; /* what Python may expect for it; NULL: not eligible */
    size_t keylen;
    int has_src;
    unsigned char src[16];
    int hops;
    int has_dst;
    unsigned char dst[16];
} Event;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_t thread;
    int running;
    int epfd, evfd, tfd, stopfd;
    int signalled;
    Sock *socks;
    size_t nsocks, capsocks;
    Slot *slots;
    size_t nslots;
    Event *queue;
    size_t qlen, qcap;
    uint64_t dropped;
    uint64_t matched;
    uint64_t sent;
    int64_t armed_ns; /* the timerfd's expiry, INT64_MAX none */
} Engine;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double ns_to_s(int64_t ns) { return (double)ns / 1e9; }
static int64_t s_to_ns(double s) { return (int64_t)(s * 1e9); }

static Sock *find_sock(Engine *e, int fd) {
    for (size_t i = 0; i < e->nsocks; i++)
        if (e->socks[i].fd == fd) return &e->socks[i];
    return NULL;
}

/* Queue one event; 0 on success, -1 when full (the caller counts a drop). */
static int push(Engine *e, const Event *ev) {
    if (e->qlen >= MAX_QUEUE) return -1;
    if (e->qlen == e->qcap) {
        size_t cap = e->qcap ? e->qcap * 2 : 64;
        Event *q = realloc(e->queue, cap * sizeof(Event));
        if (!q) return -1;
        e->queue = q;
        e->qcap = cap;
    }
    e->queue[e->qlen++] = *ev;
    return 0;
}

static void deactivate(Engine *e, Slot *s) {
    if (s->active == MODE_EXPECT) {
        Sock *k = find_sock(e, s->fd);
        if (k && k->slot_of[s->vrid] == (int)(s - e->slots)) k->slot_of[s->vrid] = -1;
    }
    free(s->key);
    s->key = NULL;
    for (size_t i = 0; i < s->ndests; i++) free(s->dests[i].payload);
    free(s->dests);
    s->dests = NULL;
    s->ndests = 0;
    s->active = 0;
}

/* A slot ends in C: Python hears of it with its counts (expired or released). */
static void end_slot(Engine *e, Slot *s, int kind) {
    Event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.fd_or_slot = (int)(s - e->slots);
    ev.count = s->count;
    ev.last_ns = s->last_ns;
    deactivate(e, s);
    if (push(e, &ev) != 0) {
        /* A queue full of datagrams: an end is never lost, it goes past the bound. */
        if (e->qlen == e->qcap) {
            size_t cap = e->qcap ? e->qcap * 2 : 64;
            Event *q = realloc(e->queue, cap * sizeof(Event));
            if (!q) return; /* out of memory */
            e->queue = q;
            e->qcap = cap;
        }
        e->queue[e->qlen++] = ev;
    }
}

static void settime(Engine *e, int64_t at) {
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at != INT64_MAX) {
        if (at <= 0) at = 1;
        its.it_value.tv_sec = at / 1000000000LL;
        its.it_value.tv_nsec = at % 1000000000LL;
    }
    timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    e->armed_ns = at;
}

/* A new deadline: the timer moves only if it is earlier. Deadlines that move later (a
 * repeat heard, an advert sent) leave the timer where it is: it fires early, finds
 * nothing due and re-arms at the earliest (rearm_all), so a datagram costs no timer
 * syscall and no scan. */
static void arm_at(Engine *e, int64_t at) {
    if (at < e->armed_ns) settime(e, at);
}

static void rearm_all(Engine *e) {
    int64_t min = INT64_MAX;
    for (size_t i = 0; i < e->nslots; i++)
        if (e->slots[i].active && e->slots[i].deadline_ns < min) min = e->slots[i].deadline_ns;
    settime(e, min);
}

/* An advert may go out this much before it is due to share a wake-up with others: a 50th
 * of its interval, at most 20 ms. Its schedule is kept (the next is due an interval after
 * this one was due), and a receiver's master-down interval is over three intervals. */
#define SEND_EARLY_MAX_NS 20000000LL

static void send_all(Engine *e, Slot *s) {
    for (size_t i = 0; i < s->ndests; i++) {
        Dest *d = &s->dests[i];
        struct iovec iov = {.iov_base = d->payload, .iov_len = d->len};
        union {
            struct sockaddr_in v4;
            struct sockaddr_in6 v6;
        } to;
        union {
            char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
            struct cmsghdr align;
        } ctl;
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        memset(&to, 0, sizeof to);
        memset(&ctl, 0, sizeof ctl);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_name = &to;
        mh.msg_control = ctl.buf;
        struct cmsghdr *c = (struct cmsghdr *)ctl.buf;
        if (s->family == 4) {
            to.v4.sin_family = AF_INET;
            memcpy(&to.v4.sin_addr, d->addr, 4);
            mh.msg_namelen = sizeof to.v4;
            struct in_pktinfo pi;
            memset(&pi, 0, sizeof pi);
            pi.ipi_ifindex = s->ifindex;
            memcpy(&pi.ipi_spec_dst, s->src, 4);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
            mh.msg_controllen = CMSG_SPACE(sizeof pi);
        } else {
            to.v6.sin6_family = AF_INET6;
            memcpy(&to.v6.sin6_addr, d->addr, 16);
            to.v6.sin6_scope_id = (uint32_t)s->ifindex;
            mh.msg_namelen = sizeof to.v6;
            struct in6_pktinfo pi;
            memset(&pi, 0, sizeof pi);
            memcpy(&pi.ipi6_addr, s->src, 16);
            pi.ipi6_ifindex = (unsigned)s->ifindex;
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof pi);
            memcpy(CMSG_DATA(c), &pi, sizeof pi);
            mh.msg_controllen = CMSG_SPACE(sizeof pi);
        }
        if (sendmsg(s->fd, &mh, MSG_DONTWAIT) < 0) {
            s->errors++;
            s->last_errno = errno;
        } else {
            e->sent++;
        }
    }
}

static void expire(Engine *e) {
    int64_t now = now_ns();
    for (size_t i = 0; i < e->nslots; i++) {
        Slot *s = &e->slots[i];
        if (s->active == MODE_EXPECT && s->deadline_ns <= now) {
            end_slot(e, s, EV_EXPIRED);
        } else if (s->active == MODE_SEND && s->deadline_ns <= now + s->early_ns) {
            send_all(e, s);
            s->count++;
            s->last_ns = s->deadline_ns;
            s->deadline_ns += s->delta_ns;
            if (s->deadline_ns <= now) s->deadline_ns = now + s->delta_ns; /* late: no burst */
        }
    }
}

/* One datagram: a match moves its slot's deadline; anything else goes to Python. */
static void handle(Engine *e, Sock *k, unsigned char *buf, size_t len, struct msghdr *mh,
                   int64_t now, unsigned char *scratch) {
    unsigned char *key = NULL;
    size_t keylen = 0;
    int vrid = -1;
    Event ev;
    memset(&ev, 0, sizeof ev);
    ev.hops = -1;
    if (k->family == 4) {
        /* A plain 20-byte header with TTL 255: nothing else in it is looked at by the
         * decoder; source, destination and payload are the key (runtime/vrrp_socket.py). */
        if (len >= 28 && buf[0] == 0x45 && buf[8] == 255) {
            key = buf + 12;
            keylen = len - 12;
            vrid = buf[21];
        }
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)mh->msg_name;
        if (mh->msg_namelen >= sizeof(struct sockaddr_in6)) {
            ev.has_src = 1;
            memcpy(ev.src, &sin6->sin6_addr, 16);
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
            if (c->cmsg_level != IPPROTO_IPV6) continue;
            if (c->cmsg_type == IPV6_HOPLIMIT && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                int h;
                memcpy(&h, CMSG_DATA(c), sizeof h);
                ev.hops = h;
            } else if (c->cmsg_type == IPV6_PKTINFO &&
                       c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
                ev.has_dst = 1;
                memcpy(ev.dst, CMSG_DATA(c), 16);
            }
        }
        if (ev.has_src && ev.has_dst && ev.hops == 255 && len >= 8 && len <= BUFSZ) {
            memcpy(scratch, ev.src, 16);
            memcpy(scratch + 16, ev.dst, 16);
            scratch[32] = 255;
            memcpy(scratch + 33, buf, len);
            key = scratch;
            keylen = 33 + len;
            vrid = buf[1];
        }
    }
    if (key) {
        int si = k->slot_of[vrid];
        if (si >= 0) {
            Slot *s = &e->slots[si];
            if (s->active == MODE_EXPECT && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) {
                s->count++;
                s->last_ns = now;
                s->deadline_ns = now + s->delta_ns;
                e->matched++;
                return;
            }
        }
    }
    if (e->qlen >= MAX_QUEUE) {
        e->dropped++;
        return;
    }
    ev.kind = EV_PACKET;
    ev.fd_or_slot = k->fd;
    ev.data = malloc(len ? len : 1);
    if (!ev.data) {
        e->dropped++;
        return;
    }
    memcpy(ev.data, buf, len);
    ev.len = len;
    if (key) {
        ev.key = malloc(keylen);
        if (ev.key) {
            memcpy(ev.key, key, keylen);
            ev.keylen = keylen;
        }
    }
    if (push(e, &ev) != 0) {
        free(ev.data);
        free(ev.key);
        e->dropped++;
    }
}

/* Wake Python (its loop watches the eventfd) if events wait and it was not woken yet. */
static void signal_python(Engine *e) {
    if (e->qlen && !e->signalled) {
        uint64_t one = 1;
        if (write(e->evfd, &one, sizeof one) == sizeof one) e->signalled = 1;
    }
}

static void drain(Engine *e, Sock *k, unsigned char (*bufs)[BUFSZ], unsigned char (*ctls)[CTLSZ],
                  struct sockaddr_in6 *names, unsigned char *scratch) {
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (int b = 0; b < MAX_BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = BUFSZ;
            memset(&msgs[i], 0, sizeof msgs[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (k->family == 6) {
                msgs[i].msg_hdr.msg_name = &names[i];
                msgs[i].msg_hdr.msg_namelen = sizeof names[i];
                msgs[i].msg_hdr.msg_control = ctls[i];
                msgs[i].msg_hdr.msg_controllen = CTLSZ;
            }
        }
        int n = recvmmsg(k->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0) return; /* EAGAIN, or an error such as ENETDOWN: epoll says when to retry */
        int64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                /* Longer than any VRRP packet we accept: Python counts it as malformed. */
                msgs[i].msg_len = 0;
            }
            handle(e, k, bufs[i], msgs[i].msg_len, &msgs[i].msg_hdr, now, scratch);
        }
        if (n < BATCH) return;
    }
}

static void *run(void *arg) {
    Engine *e = (Engine *)arg;
    unsigned char (*bufs)[BUFSZ] = malloc(sizeof(unsigned char[BATCH][BUFSZ]));
    unsigned char (*ctls)[CTLSZ] = malloc(sizeof(unsigned char[BATCH][CTLSZ]));
    struct sockaddr_in6 *names = malloc(sizeof(struct sockaddr_in6) * BATCH);
    unsigned char *scratch = malloc(KEYMAX);
    struct epoll_event evs[16];
    if (!bufs || !ctls || !names || !scratch) goto out;
    for (;;) {
        int n = epoll_wait(e->epfd, evs, 16, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        int stop = 0, fired = 0;
        pthread_mutex_lock(&e->mu);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == e->stopfd) {
                stop = 1;
            } else if (fd == e->tfd) {
                uint64_t ticks;
                if (read(e->tfd, &ticks, sizeof ticks) < 0) { /* EAGAIN: re-armed meanwhile */ }
                fired = 1;
            } else {
                Sock *k = find_sock(e, fd);
                if (k) drain(e, k, bufs, ctls, names, scratch);
            }
        }
        if (fired) {
            /* A repeat that came since epoll_wait returned still counts: read every socket
             * before any deadline is judged (as the event loop runs I/O before timers). */
            for (size_t i = 0; i < e->nsocks; i++) drain(e, &e->socks[i], bufs, ctls, names, scratch);
            expire(e);
            rearm_all(e);
        }
        signal_python(e);
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
    }
out:
    free(bufs);
    free(ctls);
    free(names);
    free(scratch);
    return NULL;
}

/* -- Python ------------------------------------------------------------------------- */

static void free_event(Event *ev) {
    free(ev->data);
    free(ev->key);
    ev->data = ev->key = NULL;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "", kwlist)) return NULL;
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (!e) return NULL;
    e->epfd = e->evfd = e->tfd = e->stopfd = -1;
    e->armed_ns = INT64_MAX;
    pthread_mutex_init(&e->mu, NULL);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (e->epfd < 0 || e->evfd < 0 || e->stopfd < 0 || e->tfd < 0) goto fail;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = e->stopfd;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->stopfd, &ev) < 0) goto fail;
    ev.data.fd = e->tfd;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) < 0) goto fail;
    /* The thread blocks every signal: Python's handlers run on the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&e->thread, NULL, run, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        goto fail;
    }
    e->running = 1;
    return (PyObject *)e;
fail:
    PyErr_SetFromErrno(PyExc_OSError);
    Py_DECREF(e);
    return NULL;
}

static void stop_thread(Engine *e) {
    if (!e->running) return;
    uint64_t one = 1;
    if (write(e->stopfd, &one, sizeof one) < 0) { /* cannot fail on a fresh eventfd */ }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(e->thread, NULL);
    Py_END_ALLOW_THREADS
    e->running = 0;
}

static void Engine_dealloc(Engine *e) {
    stop_thread(e);
    for (size_t i = 0; i < e->qlen; i++) free_event(&e->queue[i]);
    free(e->queue);
    for (size_t i = 0; i < e->nslots; i++)
        if (e->slots[i].active) deactivate(e, &e->slots[i]);
    free(e->slots);
    free(e->socks);
    if (e->epfd >= 0) close(e->epfd);
    if (e->evfd >= 0) close(e->evfd);
    if (e->tfd >= 0) close(e->tfd);
    if (e->stopfd >= 0) close(e->stopfd);
    pthread_mutex_destroy(&e->mu);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_close(Engine *e, PyObject *unused) {
    stop_thread(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_fileno(Engine *e, PyObject *unused) { return PyLong_FromLong(e->evfd); }

static PyObject *Engine_add_socket(Engine *e, PyObject *args) {
    int fd, family;
    if (!PyArg_ParseTuple(args, "ii", &fd, &family)) return NULL;
    if (family != 4 && family != 6) {
        PyErr_SetString(PyExc_ValueError, "family must be 4 or 6");
        return NULL;
    }
    pthread_mutex_lock(&e->mu);
    if (find_sock(e, fd)) {
        pthread_mutex_unlock(&e->mu);
        PyErr_Format(PyExc_ValueError, "socket %d is already watched", fd);
        return NULL;
    }
    if (e->nsocks == e->capsocks) {
        size_t cap = e->capsocks ? e->capsocks * 2 : 8;
        Sock *s = realloc(e->socks, cap * sizeof(Sock));
        if (!s) {
            pthread_mutex_unlock(&e->mu);
            return PyErr_NoMemory();
        }
        e->socks = s;
        e->capsocks = cap;
    }
    Sock *k = &e->socks[e->nsocks];
    k->fd = fd;
    k->family = family;
    for (int i = 0; i < 256; i++) k->slot_of[i] = -1;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = fd;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        pthread_mutex_unlock(&e->mu);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    e->nsocks++;
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

/* Every expectation on fd ends (EV_RELEASED, with its counts); the socket stays if keep. */
static void release_fd(Engine *e, int fd) {
    for (size_t i = 0; i < e->nslots; i++)
        if (e->slots[i].active && e->slots[i].fd == fd) end_slot(e, &e->slots[i], EV_RELEASED);
}

static PyObject *Engine_release(Engine *e, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    pthread_mutex_lock(&e->mu);
    release_fd(e, fd);
    signal_python(e);
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

static PyObject *Engine_remove_socket(Engine *e, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    pthread_mutex_lock(&e->mu);
    release_fd(e, fd);
    for (size_t i = 0; i < e->nsocks; i++) {
        if (e->socks[i].fd == fd) {
            epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
            e->socks[i] = e->socks[--e->nsocks];
            break;
        }
    }
    /* Datagrams of this socket still queued stay: they were read before it closed. */
    signal_python(e);
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

/* Room for slot number `slot` (under the mutex); -1 when out of memory. */
static int grow_slots(Engine *e, int slot) {
    if ((size_t)slot < e->nslots) return 0;
    size_t n = (size_t)slot + 1;
    if (n < e->nslots * 2) n = e->nslots * 2;
    Slot *g = realloc(e->slots, n * sizeof(Slot));
    if (!g) return -1;
    memset(g + e->nslots, 0, (n - e->nslots) * sizeof(Slot));
    e->slots = g;
    e->nslots = n;
    return 0;
}

static PyObject *Engine_expect(Engine *e, PyObject *args) {
    int slot, fd, vrid;
    Py_buffer key;
    double since, delta;
    if (!PyArg_ParseTuple(args, "iiiy*dd", &slot, &fd, &vrid, &key, &since, &delta)) return NULL;
    if (slot < 0 || slot > 1 << 20 || vrid < 0 || vrid > 255 || key.len <= 0 || delta <= 0) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "bad slot, VRID, key or delta");
        return NULL;
    }
    unsigned char *copy = malloc(key.len);
    if (!copy) {
        PyBuffer_Release(&key);
        return PyErr_NoMemory();
    }
    memcpy(copy, key.buf, key.len);
    size_t keylen = key.len;
    PyBuffer_Release(&key);
    pthread_mutex_lock(&e->mu);
    Sock *k = find_sock(e, fd);
    if (!k) {
        pthread_mutex_unlock(&e->mu);
        free(copy);
        Py_RETURN_FALSE;
    }
    if (grow_slots(e, slot) < 0) {
        pthread_mutex_unlock(&e->mu);
        free(copy);
        return PyErr_NoMemory();
    }
    Slot *s = &e->slots[slot];
    if (s->active) deactivate(e, s); /* a new expectation replaces the old, counts and all */
    int other = k->slot_of[vrid];
    if (other >= 0 && other != slot) end_slot(e, &e->slots[other], EV_RELEASED);
    s->active = MODE_EXPECT;
    s->fd = fd;
    s->vrid = vrid;
    s->key = copy;
    s->keylen = keylen;
    s->count = 0;
    s->last_ns = 0;
    s->delta_ns = s_to_ns(delta);
    s->deadline_ns = s_to_ns(since) + s->delta_ns;
    k->slot_of[vrid] = slot;
    arm_at(e, s->deadline_ns);
    signal_python(e);
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_TRUE;
}

/* The slot numbered `slot` if it is active (in `mode`, or any mode for 0), else NULL. */
static Slot *live_slot(Engine *e, int slot, int mode) {
    if (slot < 0 || (size_t)slot >= e->nslots || !e->slots[slot].active) return NULL;
    if (mode && e->slots[slot].active != mode) return NULL;
    return &e->slots[slot];
}

static PyObject *counts(uint64_t count, int64_t last_ns) {
    if (last_ns) return Py_BuildValue("(Kd)", (unsigned long long)count, ns_to_s(last_ns));
    return Py_BuildValue("(KO)", (unsigned long long)count, Py_None);
}

static PyObject *Engine_withdraw(Engine *e, PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    pthread_mutex_lock(&e->mu);
    Slot *s = live_slot(e, slot, 0);
    if (s) {
        uint64_t c = s->count;
        int64_t l = s->last_ns;
        deactivate(e, s); /* the timer may now fire early: harmless */
        pthread_mutex_unlock(&e->mu);
        return counts(c, l);
    }
    /* Ended in C but not yet taken by Python: the end event carries the counts. */
    for (size_t i = 0; i < e->qlen; i++) {
        Event *ev = &e->queue[i];
        if ((ev->kind == EV_EXPIRED || ev->kind == EV_RELEASED) && ev->fd_or_slot == slot) {
            ev->kind = EV_CANCELLED;
            uint64_t c = ev->count;
            int64_t l = ev->last_ns;
            pthread_mutex_unlock(&e->mu);
            return counts(c, l);
        }
    }
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

/* send_every(slot, fd, family, ifindex, src, [(payload, dst), ...], interval, first_due) */
static PyObject *Engine_send_every(Engine *e, PyObject *args) {
    int slot, fd, family, ifindex;
    Py_buffer src;
    PyObject *packets;
    double interval, first;
    if (!PyArg_ParseTuple(args, "iiiiy*Odd", &slot, &fd, &family, &ifindex, &src, &packets,
                          &interval, &first))
        return NULL;
    size_t alen = family == 4 ? 4 : 16;
    PyObject *seq = NULL;
    Dest *dests = NULL;
    size_t n = 0;
    if ((family != 4 && family != 6) || (size_t)src.len != alen || slot < 0 || slot > 1 << 20 ||
        interval <= 0) {
        PyErr_SetString(PyExc_ValueError, "bad slot, family, source or interval");
        goto fail;
    }
    seq = PySequence_Fast(packets, "packets must be a sequence");
    if (!seq) goto fail;
    n = (size_t)PySequence_Fast_GET_SIZE(seq);
    dests = calloc(n ? n : 1, sizeof(Dest));
    if (!dests) {
        PyErr_NoMemory();
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *payload, *dst;
        Py_ssize_t plen, dlen;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y#y#", &payload, &plen, &dst, &dlen))
            goto fail;
        if ((size_t)dlen != alen || plen <= 0) {
            PyErr_SetString(PyExc_ValueError, "bad payload or destination");
            goto fail;
        }
        dests[i].payload = malloc((size_t)plen);
        if (!dests[i].payload) {
            PyErr_NoMemory();
            goto fail;
        }
        memcpy(dests[i].payload, payload, (size_t)plen);
        dests[i].len = (size_t)plen;
        memcpy(dests[i].addr, dst, alen);
    }
    pthread_mutex_lock(&e->mu);
    if (!find_sock(e, fd)) {
        pthread_mutex_unlock(&e->mu);
        for (size_t i = 0; i < n; i++) free(dests[i].payload);
        free(dests);
        Py_DECREF(seq);
        PyBuffer_Release(&src);
        Py_RETURN_FALSE;
    }
    if (grow_slots(e, slot) < 0) {
        pthread_mutex_unlock(&e->mu);
        PyErr_NoMemory();
        goto fail;
    }
    Slot *s = &e->slots[slot];
    if (s->active) deactivate(e, s);
    s->active = MODE_SEND;
    s->fd = fd;
    s->family = family;
    s->ifindex = ifindex;
    memset(s->src, 0, 16);
    memcpy(s->src, src.buf, alen);
    s->dests = dests;
    s->ndests = n;
    s->count = 0;
    s->errors = 0;
    s->last_errno = 0;
    s->last_ns = 0;
    s->delta_ns = s_to_ns(interval);
    s->deadline_ns = s_to_ns(first);
    s->early_ns = s->delta_ns / 50 < SEND_EARLY_MAX_NS ? s->delta_ns / 50 : SEND_EARLY_MAX_NS;
    arm_at(e, s->deadline_ns);
    pthread_mutex_unlock(&e->mu);
    Py_DECREF(seq);
    PyBuffer_Release(&src);
    Py_RETURN_TRUE;
fail:
    if (dests)
        for (size_t i = 0; i < n; i++) free(dests[i].payload);
    free(dests);
    Py_XDECREF(seq);
    PyBuffer_Release(&src);
    return NULL;
}

/* (errors, last errno) of a sending slot since it was scheduled; None if not sending */
static PyObject *Engine_send_errors(Engine *e, PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    pthread_mutex_lock(&e->mu);
    Slot *s = live_slot(e, slot, MODE_SEND);
    if (s) {
        unsigned long long n = s->errors;
        int err = s->last_errno;
        pthread_mutex_unlock(&e->mu);
        return Py_BuildValue("(Ki)", n, err);
    }
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

static PyObject *Engine_peek(Engine *e, PyObject *args) {
    int slot;
    if (!PyArg_ParseTuple(args, "i", &slot)) return NULL;
    pthread_mutex_lock(&e->mu);
    Slot *s = live_slot(e, slot, 0);
    if (s) {
        uint64_t c = s->count;
        s->count = 0;
        int64_t l = s->last_ns;
        pthread_mutex_unlock(&e->mu);
        return counts(c, l);
    }
    pthread_mutex_unlock(&e->mu);
    Py_RETURN_NONE;
}

static PyObject *bytes_or_none(const unsigned char *p, size_t n, int have) {
    if (!have) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
}

static PyObject *event_tuple(Event *ev) {
    if (ev->kind != EV_PACKET) {
        if (ev->last_ns)
            return Py_BuildValue("(iiKd)", ev->kind, ev->fd_or_slot, (unsigned long long)ev->count,
                                 ns_to_s(ev->last_ns));
        return Py_BuildValue("(iiKO)", ev->kind, ev->fd_or_slot, (unsigned long long)ev->count,
                             Py_None);
    }
    PyObject *data = PyBytes_FromStringAndSize((const char *)ev->data, (Py_ssize_t)ev->len);
    PyObject *key = bytes_or_none(ev->key, ev->keylen, ev->key != NULL);
    PyObject *src = bytes_or_none(ev->src, 16, ev->has_src);
    PyObject *dst = bytes_or_none(ev->dst, 16, ev->has_dst);
    PyObject *t = NULL;
    if (data && key && src && dst)
        t = Py_BuildValue("(iiOOOiO)", EV_PACKET, ev->fd_or_slot, data, key, src, ev->hops, dst);
    Py_XDECREF(data);
    Py_XDECREF(key);
    Py_XDECREF(src);
    Py_XDECREF(dst);
    return t;
}

static PyObject *Engine_take(Engine *e, PyObject *unused) {
    uint64_t v;
    pthread_mutex_lock(&e->mu);
    if (read(e->evfd, &v, sizeof v) < 0) { /* EAGAIN: nothing signalled */ }
    e->signalled = 0;
    Event *q = e->queue;
    size_t n = e->qlen;
    e->queue = NULL;
    e->qlen = e->qcap = 0;
    pthread_mutex_unlock(&e->mu);
    PyObject *list = PyList_New(0);
    for (size_t i = 0; i < n; i++) {
        if (list && q[i].kind != EV_CANCELLED) {
            PyObject *t = event_tuple(&q[i]);
            if (!t || PyList_Append(list, t) < 0) Py_CLEAR(list);
            Py_XDECREF(t);
        }
        free_event(&q[i]);
    }
    free(q);
    return list;
}

static PyObject *Engine_stats(Engine *e, PyObject *unused) {
    pthread_mutex_lock(&e->mu);
    unsigned long long m = e->matched, d = e->dropped, t = e->sent;
    pthread_mutex_unlock(&e->mu);
    return Py_BuildValue("{sKsKsK}", "matched", m, "dropped", d, "sent", t);
}

static PyMethodDef Engine_methods[] = {
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "The eventfd that is readable while events wait."},
    {"add_socket", (PyCFunction)Engine_add_socket, METH_VARARGS, "add_socket(fd, family): read it here from now on."},
    {"remove_socket", (PyCFunction)Engine_remove_socket, METH_VARARGS, "remove_socket(fd): stop reading it; its expectations end (released)."},
    {"release", (PyCFunction)Engine_release, METH_VARARGS, "release(fd): every expectation on fd ends (released)."},
    {"expect", (PyCFunction)Engine_expect, METH_VARARGS, "expect(slot, fd, vrid, key, since, delta) -> bool."},
    {"send_every", (PyCFunction)Engine_send_every, METH_VARARGS, "send_every(slot, fd, family, ifindex, src, [(payload, dst)], interval, first_due) -> bool."},
    {"send_errors", (PyCFunction)Engine_send_errors, METH_VARARGS, "send_errors(slot) -> (count, errno) or None."},
    {"withdraw", (PyCFunction)Engine_withdraw, METH_VARARGS, "withdraw(slot) -> (count, last) or None."},
    {"peek", (PyCFunction)Engine_peek, METH_VARARGS, "peek(slot) -> (count since last peek, last) or None."},
    {"take", (PyCFunction)Engine_take, METH_NOARGS, "The waiting events, oldest first."},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "{'matched': n, 'dropped': n, 'sent': n}."},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "Stop the thread (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "keepvip_agent.runtime._rxwatch.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The receive thread of the VRRP sockets (see the module source).",
    .tp_new = Engine_new,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rxwatch", "The receive thread of the VRRP sockets.", -1, NULL,
};

PyMODINIT_FUNC PyInit__rxwatch(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "PACKET", EV_PACKET);
    PyModule_AddIntConstant(m, "EXPIRED", EV_EXPIRED);
    PyModule_AddIntConstant(m, "RELEASED", EV_RELEASED);
    return m;
}
