/*
 * Conversations of the routing core: participants, message counts and
 * activity times, persisted with every message that touches them, and
 * expired through a min-heap on last activity (no scans).  The heap is
 * lazy: a message only moves a conversation's last_ms forward, and its key
 * (heap_ms, never after last_ms) catches up when it reaches the top at
 * expiry, so routing costs no heap work; a clock that went back moves the
 * key back at once.  Callers hold rt->lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "switchboard/util.h"

void rt_conv_free(struct rt_conv *c)
{
	for (size_t i = 0; i < c->nparts; i++)
		free(c->parts[i]);
	free(c->parts);
	free(c->parts_json);
	free(c->protocol);
	free(c->id);
	free(c);
}

static int conv_has(const struct rt_conv *c, const char *agent)
{
	for (size_t i = 0; i < c->nparts; i++)
		if (strcmp(c->parts[i], agent) == 0)
			return 1;
	return 0;
}

int rt_conv_add_part(struct rt_conv *c, const char *agent)
{
	char **p, *s;

	if (conv_has(c, agent))
		return 0;
	s = strdup(agent);
	if (!s)
		return -ENOMEM;
	p = realloc(c->parts, (c->nparts + 1) * sizeof(*p));
	if (!p) {
		free(s);
		return -ENOMEM;
	}
	c->parts = p;
	c->parts[c->nparts++] = s;
	free(c->parts_json);
	c->parts_json = NULL;
	return 0;
}

struct rt_conv *rt_conv_new(const char *id, const char *protocol, int64_t created_ms)
{
	struct rt_conv *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->id = strdup(id);
	c->protocol = protocol && *protocol ? strdup(protocol) : NULL;
	if (!c->id || (protocol && *protocol && !c->protocol)) {
		rt_conv_free(c);
		return NULL;
	}
	c->created_ms = c->last_ms = c->heap_ms = created_ms;
	c->heap_idx = HEAP_NOT_IN;
	return c;
}

char *rt_conv_parts_json(const struct rt_conv *c)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < c->nparts; i++)
		if (json_array_append_new(arr, json_string(c->parts[i]))) {
			json_decref(arr);
			return NULL;
		}
	return rt_json_dump_array(arr);
}

void rt_conv_expire(struct rt *rt, int64_t now_ms, struct store_op **ops, size_t *nops, char ***ids, size_t *nids)
{
	struct rt_conv *c;

	*ops = NULL;
	*ids = NULL;
	*nops = *nids = 0;
	while ((c = heap_peek(&rt->conv_heap)) && c->heap_ms + rt->cfg.conv.timeout_ms < now_ms) {
		struct store_op *o;
		char **ni;

		if (c->last_ms + rt->cfg.conv.timeout_ms >= now_ms) {
			/* active since it was keyed: its key catches up, it sinks */
			c->heap_ms = c->last_ms;
			heap_fix(&rt->conv_heap, c->heap_idx);
			continue;
		}
		o = realloc(*ops, (*nops + 1) * sizeof(*o));
		ni = realloc(*ids, (*nids + 1) * sizeof(*ni));
		if (o)
			*ops = o;
		if (ni)
			*ids = ni;
		if (!o || !ni)
			break;
		heap_pop(&rt->conv_heap);
		HASH_DEL(rt->convs, c);
		(*ids)[*nids] = c->id;
		c->id = NULL;
		memset(&(*ops)[*nops], 0, sizeof(**ops));
		(*ops)[*nops].type = STORE_CONV_DELETE;
		(*ops)[*nops].id = (*ids)[*nids];
		(*nids)++;
		(*nops)++;
		met_inc(rt->met->conv_expired);
		rt_conv_free(c);
	}
}

/* Track a conversation for one message; queue a snapshot op per
 * conversation touched by this submission (coalesced by the caller). */
int rt_conv_touch(struct rt *rt, struct rt_item *it, size_t len, unsigned hv, int64_t now_ms, struct rt_conv **out)
{
	struct rt_conv *c;
	int created = 0, has_s, has_r;

	*out = NULL;
	HASH_FIND_BYHASHVALUE(hh, rt->convs, it->m.conversation_id, len, hv, c);
	if (!c) {
		if (HASH_COUNT(rt->convs) >= (size_t)rt->cfg.conv.max_active) {
			rt_item_fail(it, 429, "ResourceExhausted", RM_RESOURCE_EXHAUSTED, "conversation_id", "%s",
				     "too many active conversations (conversation.maxActive)");
			return -EAGAIN;
		}
		c = rt_conv_new(it->m.conversation_id, it->m.protocol, now_ms);
		if (!c)
			return -ENOMEM;
		created = 1;
	}
	has_s = conv_has(c, it->m.sender);
	has_r = conv_has(c, it->m.receiver) || strcmp(it->m.sender, it->m.receiver) == 0;
	if (c->nparts + !has_s + !has_r > (size_t)rt->cfg.conv.max_participants) {
		if (created)
			rt_conv_free(c);
		rt_item_fail(it, 409, "ConversationFull", RM_INVALID_MESSAGE, "conversation_id", "%s",
			     "the conversation already has conversation.maxParticipants participants");
		return -EAGAIN;
	}
	if ((!has_s && rt_conv_add_part(c, it->m.sender)) || (!has_r && rt_conv_add_part(c, it->m.receiver))) {
		if (created)
			rt_conv_free(c);
		return -ENOMEM;
	}
	if (created) {
		HASH_ADD_KEYPTR_BYHASHVALUE(hh, rt->convs, c->id, len, hv, c);
		rt_heap_push(&rt->conv_heap, c);
	}
	c->last_ms = now_ms;
	c->count++;
	if (now_ms < c->heap_ms) { /* the clock went back: so does its key */
		c->heap_ms = now_ms;
		heap_fix(&rt->conv_heap, c->heap_idx);
	}
	*out = c;
	return 0;
}

int rt_recover_conv(void *ctx, const char *id, const char *parts, const char *protocol, int64_t created_ms,
		    int64_t last_ms, int64_t count)
{
	struct rt *rt = ctx;
	struct rt_conv *c;
	json_t *arr;
	size_t i;
	json_t *v;

	if (!id)
		return 0;
	c = rt_conv_new(id, protocol, created_ms);
	if (!c)
		return -ENOMEM;
	c->last_ms = c->heap_ms = last_ms;
	c->count = (uint64_t)count;
	arr = json_loads(parts ? parts : "[]", 0, NULL);
	json_array_foreach (arr, i, v) {
		if (json_is_string(v) && rt_conv_add_part(c, json_string_value(v))) {
			json_decref(arr);
			rt_conv_free(c);
			return -ENOMEM;
		}
	}
	json_decref(arr);
	HASH_ADD_KEYPTR(hh, rt->convs, c->id, strlen(c->id), c);
	rt_heap_push(&rt->conv_heap, c);
	return 0;
}
