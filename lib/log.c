/*
 * JSON-lines logger.  Lines are assembled in a bounded buffer on the stack
 * side (struct buf with a 16 KiB limit) and written with a single write(2)
 * so concurrent threads never interleave within a line.
 */
#include "switchboard/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "switchboard/buf.h"
#include "switchboard/util.h"

#define LOG_LINE_MAX ((size_t)16 * 1024)

static const char *log_component = "switchboard";
static atomic_int log_min = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_component(const char *component)
{
	log_component = component;
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_min, (int)level);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < SB_ARRAY_SIZE(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < SB_ARRAY_SIZE(level_names) ? level_names[level] : "info";
}

int log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&log_min);
}

int log_sample(double rate)
{
	static _Thread_local uint64_t s;
	uint64_t x;

	if (rate >= 1.0)
		return 1;
	if (rate <= 0.0)
		return 0;
	if (!s)
		s = util_mono_ns() | 1;
	x = s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s = x;
	return (double)(x >> 11) * (1.0 / 9007199254740992.0) < rate;
}

static int is_secret_key(const char *k)
{
	static const char *const words[] = {"token", "secret", "password", "authorization"};

	for (size_t i = 0; i < SB_ARRAY_SIZE(words); i++)
		if (strcasestr(k, words[i]))
			return 1;
	return 0;
}

void log_emit(enum log_level level, const char *msg, ...)
{
	char ts[32];
	struct buf b;
	va_list ap;
	const char *key;
	int rc;

	if (!log_enabled(level))
		return;
	buf_init(&b, LOG_LINE_MAX);
	util_fmt_rfc3339(util_now_ms(), ts);
	rc = buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, log_level_name(level));
	if (!rc)
		rc = buf_json_str(&b, log_component);
	if (!rc)
		rc = buf_puts(&b, ",\"msg\":");
	if (!rc)
		rc = buf_json_str(&b, msg);
	va_start(ap, msg);
	while (!rc && (key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		size_t mark = b.len;
		int raw = strncmp(key, "n:", 2) == 0;

		if (!val)
			continue;
		if (raw)
			key += 2;
		rc = buf_puts(&b, ",");
		if (!rc)
			rc = buf_json_str(&b, key);
		if (!rc)
			rc = buf_puts(&b, ":");
		if (!rc && is_secret_key(key))
			rc = buf_puts(&b, "\"[REDACTED]\"");
		else if (!rc)
			rc = raw ? buf_puts(&b, val) : buf_json_str(&b, val);
		if (rc == -E2BIG) { /* keep the line valid: drop the field */
			b.len = mark;
			b.data[mark] = '\0';
			rc = 0;
			break;
		}
	}
	va_end(ap);
	if (!rc)
		rc = buf_puts(&b, "}\n");
	if (rc) {
		buf_free(&b);
		return;
	}
	for (size_t off = 0; off < b.len;) {
		ssize_t n = write(STDERR_FILENO, b.data + off, b.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	buf_free(&b);
}
