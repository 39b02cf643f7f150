/* Intrusive doubly linked lists: the one list type every layer uses. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define evt__container_of(ptr, type, member) \
        ((type *) ((char *) (ptr) - offsetof(type, member)))

/* A list head and a list node are the same type. A node that is on no list
 * points to itself, so removing it twice is harmless. */
typedef struct evt__list {
        struct evt__list *next;
        struct evt__list *prev;
} evt__list;

static inline void evt__list_init(evt__list *l) {
        l->next = l;
        l->prev = l;
}

static inline bool evt__list_empty(const evt__list *l) {
        return l->next == l;
}

/* Insert n before pos; with pos the head, that appends. */
static inline void evt__list_insert_before(evt__list *pos, evt__list *n) {
        n->prev = pos->prev;
        n->next = pos;
        pos->prev->next = n;
        pos->prev = n;
}

static inline void evt__list_push_back(evt__list *head, evt__list *n) {
        evt__list_insert_before(head, n);
}

static inline void evt__list_push_front(evt__list *head, evt__list *n) {
        evt__list_insert_before(head->next, n);
}

static inline void evt__list_remove(evt__list *n) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
        evt__list_init(n);
}

static inline evt__list *evt__list_pop_front(evt__list *head) {
        evt__list *n = head->next;

        if (n == head)
                return NULL;
        evt__list_remove(n);
        return n;
}

/* Move every node of src, in order, to just before pos (a node, or a head:
 * its end); src is left empty. */
static inline void evt__list_splice_before(evt__list *pos, evt__list *src) {
        if (evt__list_empty(src))
                return;
        src->next->prev = pos->prev;
        pos->prev->next = src->next;
        src->prev->next = pos;
        pos->prev = src->prev;
        evt__list_init(src);
}

/* Move every node of src to the end of dst; src is left empty. */
static inline void evt__list_splice_back(evt__list *dst, evt__list *src) {
        evt__list_splice_before(dst, src);
}

#define evt__list_for_each(pos, head) \
        for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
