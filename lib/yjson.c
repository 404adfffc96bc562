/*
 * YAML <-> jansson conversion with libyaml.  Parsing is event-driven with an
 * explicit stack, so memory is proportional to the document and depth is
 * bounded.  Emission uses libyaml's emitter so quoting is always correct;
 * strings that would read back as another type are double-quoted.
 */
#include "switchboard/yjson.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YJ_MAX_DEPTH 64

struct frame {
	json_t *node;
	char *key; /* pending mapping key, owned */
};

static int resolve_plain(const char *s, size_t len, json_t **out)
{
	char *end;

	if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	    strcmp(s, "NULL") == 0) {
		*out = json_null();
		return 0;
	}
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		*out = json_true();
		return 0;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		*out = json_false();
		return 0;
	}
	if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && len > 1)) {
		long long v;
		double d;

		errno = 0;
		if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
			v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
			if (!*end && !errno) {
				*out = json_integer(v);
				return *out ? 0 : -ENOMEM;
			}
		}
		errno = 0;
		v = strtoll(s, &end, 10);
		if (!*end && !errno) {
			*out = json_integer(v);
			return *out ? 0 : -ENOMEM;
		}
		errno = 0;
		d = strtod(s, &end);
		if (!*end && !errno && isfinite(d) && strpbrk(s, ".eE") && !strpbrk(s, "xXnN")) {
			*out = json_real(d);
			return *out ? 0 : -ENOMEM;
		}
	}
	*out = json_stringn(s, len);
	return *out ? 0 : -EINVAL; /* NULL here means invalid UTF-8 */
}

static int attach(struct frame *stack, int depth, json_t **root, json_t *v, char *err, size_t errlen,
		  const yaml_mark_t *mark)
{
	struct frame *top;

	if (depth == 0) {
		*root = v;
		return 0;
	}
	top = &stack[depth - 1];
	if (json_is_array(top->node))
		return json_array_append_new(top->node, v) ? -ENOMEM : 0;
	if (!top->key) {
		json_decref(v);
		snprintf(err, errlen, "line %zu column %zu: mapping keys must be scalars", mark->line + 1,
			 mark->column + 1);
		return -EINVAL;
	}
	if (json_object_get(top->node, top->key)) {
		snprintf(err, errlen, "line %zu column %zu: duplicate key \"%.64s\"", mark->line + 1, mark->column + 1,
			 top->key);
		json_decref(v);
		return -EINVAL;
	}
	if (json_object_set_new(top->node, top->key, v)) {
		free(top->key);
		top->key = NULL;
		return -ENOMEM;
	}
	free(top->key);
	top->key = NULL;
	return 0;
}

int yj_parse(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct frame stack[YJ_MAX_DEPTH];
	int depth = 0, rc = 0, done = 0;
	json_t *root = NULL;

	err[0] = '\0';
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && !rc) {
		if (!yaml_parser_parse(&parser, &ev)) {
			snprintf(err, errlen, "line %zu column %zu: %s", parser.problem_mark.line + 1,
				 parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML syntax error");
			rc = -EINVAL;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
		case YAML_DOCUMENT_END_EVENT:
			done = ev.type == YAML_STREAM_END_EVENT || root != NULL;
			break;
		case YAML_ALIAS_EVENT:
			snprintf(err, errlen, "line %zu column %zu: aliases are not supported", ev.start_mark.line + 1,
				 ev.start_mark.column + 1);
			rc = -EINVAL;
			break;
		case YAML_SCALAR_EVENT: {
			const char *v = (const char *)ev.data.scalar.value;
			size_t vl = ev.data.scalar.length;
			json_t *node = NULL;
			struct frame *top = depth ? &stack[depth - 1] : NULL;

			if (top && json_is_object(top->node) && !top->key) {
				if (strlen(v) != vl) {
					snprintf(err, errlen, "line %zu: NUL byte in key", ev.start_mark.line + 1);
					rc = -EINVAL;
					break;
				}
				top->key = strdup(v);
				rc = top->key ? 0 : -ENOMEM;
				break;
			}
			if (strlen(v) != vl) {
				/* a "\0" escape: the C strings the config is read into would cut it */
				snprintf(err, errlen, "line %zu column %zu: NUL character in a value",
					 ev.start_mark.line + 1, ev.start_mark.column + 1);
				rc = -EINVAL;
				break;
			}
			if (ev.data.scalar.plain_implicit && !ev.data.scalar.tag)
				rc = resolve_plain(v, vl, &node);
			else
				node = json_stringn(v, vl);
			if (!rc && !node) {
				snprintf(err, errlen, "line %zu column %zu: invalid UTF-8", ev.start_mark.line + 1,
					 ev.start_mark.column + 1);
				rc = -EINVAL;
			}
			if (!rc)
				rc = attach(stack, depth, &root, node, err, errlen, &ev.start_mark);
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			json_t *node = ev.type == YAML_SEQUENCE_START_EVENT ? json_array() : json_object();

			if (!node) {
				rc = -ENOMEM;
				break;
			}
			if (depth >= YJ_MAX_DEPTH) {
				json_decref(node);
				snprintf(err, errlen, "line %zu: nesting deeper than %d", ev.start_mark.line + 1,
					 YJ_MAX_DEPTH);
				rc = -EINVAL;
				break;
			}
			json_incref(node);
			rc = attach(stack, depth, &root, node, err, errlen, &ev.start_mark);
			if (rc) {
				json_decref(node);
				break;
			}
			stack[depth].node = node;
			stack[depth].key = NULL;
			depth++;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth == 0) {
				rc = -EINVAL;
				break;
			}
			depth--;
			free(stack[depth].key);
			json_decref(stack[depth].node);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	while (depth > 0) {
		depth--;
		free(stack[depth].key);
		json_decref(stack[depth].node);
	}
	yaml_parser_delete(&parser);
	if (rc) {
		json_decref(root);
		if (!err[0])
			snprintf(err, errlen, "%s", rc == -ENOMEM ? "out of memory" : "invalid YAML");
		return rc;
	}
	if (!root || json_is_null(root)) {
		json_decref(root);
		root = json_object();
		if (!root)
			return -ENOMEM;
	}
	*out = root;
	return 0;
}

/* --- JSON value extents ------------------------------------------------- */

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int yj_json_span(const char *p, size_t len, size_t *start, size_t *end)
{
	size_t i = 0;
	int depth = 0;

	while (i < len && is_ws(p[i]))
		i++;
	if (i == len)
		return -EINVAL;
	*start = i;
	if (p[i] != '{' && p[i] != '[' && p[i] != '"') {
		/* a scalar: up to the next delimiter */
		while (i < len && !is_ws(p[i]) && p[i] != ',' && p[i] != ']' && p[i] != '}')
			i++;
		*end = i;
		return i > *start ? 0 : -EINVAL;
	}
	for (; i < len; i++) {
		char c = p[i];

		if (c == '"') {
			/* jump to each quote (memchr is vectorised); one behind an
			 * odd run of backslashes is escaped */
			for (i++;; i++) {
				const char *q = memchr(p + i, '"', len - i);
				size_t k;

				if (!q) {
					i = len;
					break;
				}
				i = (size_t)(q - p);
				for (k = i; k > 0 && p[k - 1] == '\\'; k--)
					;
				if ((i - k) % 2 == 0)
					break;
			}
			if (i >= len)
				return -EINVAL;
			if (depth == 0) {
				*end = i + 1;
				return 0;
			}
		} else if (c == '{' || c == '[') {
			if (++depth > YJ_MAX_DEPTH)
				return -EINVAL;
		} else if (c == '}' || c == ']') {
			if (--depth == 0) {
				*end = i + 1;
				return 0;
			}
		}
	}
	return -EINVAL;
}

/* --- emitter ------------------------------------------------------------ */

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
	return buf_append(data, buffer, size) == 0;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, yaml_scalar_style_t style)
{
	yaml_event_t ev;

	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1, style))
		return -ENOMEM;
	return yaml_emitter_emit(em, &ev) ? 0 : -EIO;
}

static int emit_string(yaml_emitter_t *em, const char *s)
{
	json_t *probe = NULL;
	int plain_ok;

	if (!s)
		s = "";
	plain_ok = resolve_plain(s, strlen(s), &probe) == 0 && json_is_string(probe);

	json_decref(probe);
	return emit_scalar(em, s, plain_ok ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int emit_node(yaml_emitter_t *em, const json_t *n, int sort_keys, int depth)
{
	yaml_event_t ev;
	char num[64];
	int rc = 0;

	if (depth > YJ_MAX_DEPTH)
		return -EINVAL;
	switch (json_typeof(n)) {
	case JSON_OBJECT: {
		size_t cnt = json_object_size(n), i = 0;
		const char **keys = calloc(cnt ? cnt : 1, sizeof(*keys));
		const char *k;
		json_t *v;

		if (!keys)
			return -ENOMEM;
		json_object_foreach ((json_t *)n, k, v)
			keys[i++] = k;
		if (sort_keys)
			qsort(keys, cnt, sizeof(*keys), cmp_str);
		if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			rc = -EIO;
		for (i = 0; !rc && i < cnt; i++) {
			rc = emit_string(em, keys[i]);
			if (!rc)
				rc = emit_node(em, json_object_get(n, keys[i]), sort_keys, depth + 1);
		}
		free(keys);
		if (!rc && (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev)))
			rc = -EIO;
		return rc;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *v;

		if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
		    !yaml_emitter_emit(em, &ev))
			return -EIO;
		json_array_foreach (n, i, v) {
			rc = emit_node(em, v, sort_keys, depth + 1);
			if (rc)
				return rc;
		}
		if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(em, &ev))
			return -EIO;
		return 0;
	}
	case JSON_STRING:
		return emit_string(em, json_string_value(n));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(n));
		return emit_scalar(em, num, YAML_PLAIN_SCALAR_STYLE);
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(n));
		if (!strpbrk(num, ".eE"))
			strcat(num, ".0");
		return emit_scalar(em, num, YAML_PLAIN_SCALAR_STYLE);
	case JSON_TRUE:
		return emit_scalar(em, "true", YAML_PLAIN_SCALAR_STYLE);
	case JSON_FALSE:
		return emit_scalar(em, "false", YAML_PLAIN_SCALAR_STYLE);
	case JSON_NULL:
	default:
		return emit_scalar(em, "null", YAML_PLAIN_SCALAR_STYLE);
	}
}

int yj_emit(const json_t *root, int sort_keys, struct buf *out)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int rc = 0;

	if (!yaml_emitter_initialize(&em))
		return -ENOMEM;
	yaml_emitter_set_output(&em, emit_write, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || !yaml_emitter_emit(&em, &ev) ||
	    !yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) || !yaml_emitter_emit(&em, &ev)) {
		rc = -EIO;
		goto out;
	}
	rc = emit_node(&em, root, sort_keys, 0);
	if (rc)
		goto out;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev) ||
	    !yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev) || !yaml_emitter_flush(&em))
		rc = -EIO;
out:
	if (rc == -EIO && em.error == YAML_WRITER_ERROR)
		rc = -E2BIG;
	yaml_emitter_delete(&em);
	return rc;
}
