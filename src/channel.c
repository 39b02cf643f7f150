/* Channels: bounded queues of fixed-size values between tasks, with
 * senders and receivers served in the order they came (waitq.c).
 *
 * Invariants: receivers wait only while the buffer is empty, and senders
 * only while it is full (always, at capacity 0); a value goes straight
 * from a sender to a waiting receiver, or from a waiting sender into the
 * room a receiver made, so nobody is woken to find nothing. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

struct evt_channel {
        evt_loop *loop;
        size_t elem_size;
        size_t capacity;        /* values the buffer holds; 0: rendezvous */
        size_t head, len;       /* the ring: first value, values in it */
        bool closed;
        evt__list senders;      /* evt__waiter.link; data: the value */
        evt__list receivers;    /* evt__waiter.link; data: where it goes */
        unsigned char *buf;     /* capacity * elem_size bytes */
};

int evt_channel_new(evt_loop *loop, size_t elem_size, size_t capacity, evt_channel **ret_channel) {
        evt_channel *c;

        if (!loop || !ret_channel || elem_size == 0)
                return -EINVAL;
        if (capacity > SIZE_MAX / elem_size)
                return -ENOMEM;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        if (capacity > 0) {
                c->buf = malloc(capacity * elem_size);
                if (!c->buf) {
                        free(c);
                        return -ENOMEM;
                }
        }
        c->loop = loop;
        c->elem_size = elem_size;
        c->capacity = capacity;
        evt__list_init(&c->senders);
        evt__list_init(&c->receivers);
        *ret_channel = c;
        return 0;
}

void evt_channel_free(evt_channel *channel) {
        if (!channel)
                return;
        evt__waiters_wake_all(&channel->senders, -EIDRM);
        evt__waiters_wake_all(&channel->receivers, -EIDRM);
        free(channel->buf);
        free(channel);
}

static void *slot(evt_channel *c, size_t i) {
        return c->buf + ((c->head + i) % c->capacity) * c->elem_size;
}

/* A value a receiver asked for: `to` may be NULL, to drop it. */
static void deliver(evt_channel *c, void *to, const void *from) {
        if (to)
                memcpy(to, from, c->elem_size);
}

/* Which task may use the channel: the caller, in a task of its loop. */
static int channel_enter(evt_channel *c, evt_task **ret_task) {
        return evt__enter_on(c, c ? c->loop : NULL, ret_task);
}

/* A send that needs no wait: to a waiting receiver, or into the buffer.
 * -EAGAIN if it would have to wait. */
static int send_now(evt_channel *c, const void *elem) {
        evt__waiter *w;

        if (c->closed)
                return -EPIPE;
        w = evt__waiter_next(&c->receivers);
        if (w) {
                deliver(c, w->data, elem);
                evt__waiter_hand(w);
                return 0;
        }
        if (c->len == c->capacity)
                return -EAGAIN;
        memcpy(slot(c, c->len), elem, c->elem_size);
        c->len++;
        return 0;
}

int evt_channel_send(evt_channel *channel, const void *elem, evt_deadline deadline) {
        evt_channel *c = channel;
        evt__waiter w;
        evt_task *t;
        int r;

        if (!elem)
                return -EINVAL;
        r = channel_enter(c, &t);
        if (r < 0)
                return r;
        r = send_now(c, elem);
        if (r != -EAGAIN)
                return r;
        evt__waits(t, "channel send", -1);
        r = evt__waiter_wait(&w, t, &c->senders, (void *) elem, deadline.at);
        /* A receiver that took the value took it, whatever came after. */
        return w.handed ? 0 : r;
}

int evt_channel_try_send(evt_channel *channel, const void *elem) {
        if (!channel || !elem)
                return -EINVAL;
        return send_now(channel, elem);
}

/* A receive that needs no wait: from the buffer (a waiting sender's value
 * takes the room), or from a waiting sender. -EAGAIN if it would have to
 * wait, -EPIPE once the channel is closed and drained. */
static int recv_now(evt_channel *c, void *ret_elem) {
        evt__waiter *w = evt__waiter_next(&c->senders);

        if (c->len > 0) {
                deliver(c, ret_elem, slot(c, 0));
                c->head = (c->head + 1) % c->capacity;
                c->len--;
                if (w) {
                        memcpy(slot(c, c->len), w->data, c->elem_size);
                        c->len++;
                }
        } else if (w) {
                deliver(c, ret_elem, w->data);
        } else {
                return c->closed ? -EPIPE : -EAGAIN;
        }
        if (w)
                evt__waiter_hand(w);
        return 0;
}

int evt_channel_recv(evt_channel *channel, void *ret_elem, evt_deadline deadline) {
        evt_channel *c = channel;
        evt__waiter w;
        evt_task *t;
        int r;

        r = channel_enter(c, &t);
        if (r < 0)
                return r;
        r = recv_now(c, ret_elem);
        if (r != -EAGAIN)
                return r;
        evt__waits(t, "channel receive", -1);
        r = evt__waiter_wait(&w, t, &c->receivers, ret_elem, deadline.at);
        return w.handed ? 0 : r;
}

int evt_channel_close(evt_channel *channel) {
        if (!channel)
                return -EINVAL;
        channel->closed = true;
        /* Waiting receivers found the buffer empty: nothing more comes.
         * Waiting senders' values are not taken. */
        evt__waiters_wake_all(&channel->receivers, -EPIPE);
        evt__waiters_wake_all(&channel->senders, -EPIPE);
        return 0;
}

bool evt_channel_is_closed(const evt_channel *channel) {
        return channel && channel->closed;
}

size_t evt_channel_len(const evt_channel *channel) {
        return channel ? channel->len : 0;
}
