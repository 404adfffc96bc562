/*
 * Clocks, timestamps, identifiers, digests and UTF-8 checks.  Randomness and
 * SHA-256 come from libsodium rather than being written here.
 */
#include "switchboard/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int util_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

int64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct timespec util_deadline_us(int clock, int64_t us)
{
	struct timespec ts;

	if (us < 0)
		us = 0; /* a deadline already past: now */
	clock_gettime((clockid_t)clock, &ts);
	ts.tv_sec += (time_t)(us / 1000000);
	ts.tv_nsec += (long)(us % 1000000) * 1000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

struct timespec util_deadline(int clock, int64_t ms)
{
	return util_deadline_us(clock, ms * 1000);
}

void util_fmt_rfc3339(int64_t ms, char out[32])
{
	/* the date and time change once a second: format them once per thread */
	static _Thread_local int64_t cached_secs = INT64_MIN;
	static _Thread_local char cached[32];
	static _Thread_local size_t cached_len;
	int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
	unsigned frac = (unsigned)(ms - secs * 1000);

	if (secs != cached_secs) {
		time_t t = (time_t)secs;
		struct tm tm;

		gmtime_r(&t, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_secs = secs;
	}
	memcpy(out, cached, cached_len);
	out[cached_len] = '.';
	out[cached_len + 1] = (char)('0' + frac / 100);
	out[cached_len + 2] = (char)('0' + frac / 10 % 10);
	out[cached_len + 3] = (char)('0' + frac % 10);
	out[cached_len + 4] = 'Z';
	out[cached_len + 5] = '\0';
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int expect(const char **p, const char *set)
{
	if (!**p || !strchr(set, **p))
		return -EINVAL;
	(*p)++;
	return 0;
}

int util_parse_rfc3339(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, se, frac = 0, off = 0;
	const char *p = s;
	int64_t secs;

	if (digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) || expect(&p, "-") || digits(&p, 2, &d) ||
	    expect(&p, "Tt ") || digits(&p, 2, &h) || expect(&p, ":") || digits(&p, 2, &mi) || expect(&p, ":") ||
	    digits(&p, 2, &se))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	if (*p == '.') {
		int n = 0;

		p++;
		while (*p >= '0' && *p <= '9') {
			if (n < 3)
				frac = frac * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0 || n > 9)
			return -EINVAL;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, sign = *p == '-' ? -1 : 1;

		p++;
		if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	secs = (int64_t)timegm(&tm);
	if (tm.tm_mday != d) /* 31 February and friends */
		return -EINVAL;
	*ms = (secs - off) * 1000 + frac;
	return 0;
}

void util_random_id(char out[33])
{
	unsigned char raw[16];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out, 33, raw, sizeof(raw));
}

void util_sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(d, p, len);
	sodium_bin2hex(out, 65, d, sizeof(d));
}

size_t util_utf8_next(const unsigned char *p, size_t avail)
{
	unsigned c, cp, min;
	size_t n;

	if (!avail)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		n = 1;
		cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 2;
		cp = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 3;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (avail <= n)
		return 0;
	for (size_t i = 1; i <= n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* no overlong forms, no surrogates, nothing past U+10FFFF (RFC 3629) */
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n + 1;
}

int util_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		size_t n;

		/* ASCII, the common case, eight bytes at a time */
		while ((size_t)(end - p) >= 8) {
			uint64_t w;

			memcpy(&w, p, sizeof(w));
			if (w & UINT64_C(0x8080808080808080))
				break;
			p += 8;
		}
		if (p == end)
			break;
		n = util_utf8_next(p, (size_t)(end - p));

		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

int util_is_lower_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return i == len;
}

int util_read_file(const char *path, size_t limit, char **out, size_t *len)
{
	int fd, rc = 0;
	char *data = NULL;
	size_t used = 0, cap = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - used < 4096) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *p;

			if (ncap > limit + 4097)
				ncap = limit + 4097;
			if (ncap <= cap) {
				rc = -E2BIG;
				goto out;
			}
			p = realloc(data, ncap);
			if (!p) {
				rc = -ENOMEM;
				goto out;
			}
			data = p;
			cap = ncap;
		}
		n = read(fd, data + used, cap - used - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > limit) {
			rc = -E2BIG;
			goto out;
		}
	}
	if (!data) {
		data = calloc(1, 1);
		if (!data) {
			rc = -ENOMEM;
			goto out;
		}
	}
	data[used] = '\0';
	*out = data;
	data = NULL;
	if (len)
		*len = used;
out:
	free(data);
	close(fd);
	return rc;
}
