#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

void hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t len)
{
	if (strlen(in) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_nibble(in[2 * i]), lo = hex_nibble(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void format_time_utc(int64_t ns, char *out, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9') /* strtoull would skip spaces and take signs */
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	uint64_t mult = 1;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': mult = 1ull << 10; end++; break;
	case 'm': case 'M': mult = 1ull << 20; end++; break;
	case 'g': case 'G': mult = 1ull << 30; end++; break;
	case 't': case 'T': mult = 1ull << 40; end++; break;
	default: return -EINVAL;
	}
	if (mult > 1 && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

void format_bytes(uint64_t n, char *out, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%llu B", (unsigned long long)n);
	else
		snprintf(out, len, "%.1f %s", v, units[u]);
}

bool all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	/* word-at-a-time after a byte check, then compare with itself shifted */
	if (len == 0)
		return true;
	if (p[0] != 0)
		return false;
	return memcmp(p, p + 1, len - 1) == 0;
}

int array_grow(void *vp, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / elem)
		return -ENOMEM;
	void *v = realloc(*(void **)vp, ncap * elem);
	if (!v)
		return -ENOMEM;
	*(void **)vp = v;
	*cap = ncap;
	return 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	if (b->len + extra <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + extra)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	int rc = buf_reserve(b, len);
	if (rc < 0)
		return rc;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

void one_line(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			*p = '?';
		else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = p[1] = '?';
		else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
			p[0] = p[1] = p[2] = '?';
	}
}

int set_err(char *err, size_t len, int rc, const char *fmt, ...)
{
	if (err && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
		one_line(err);
	}
	return rc;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int read_secret_file(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return set_err(err, errlen, -errno, "cannot read password file %s: %s", path,
			       strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	int e = n < 0 && ferror(f) ? -errno : 0;
	fclose(f);
	if (n <= 0 || line[0] == '\n' || line[0] == '\r') {
		if (line)
			explicit_bzero(line, cap);
		free(line);
		return e ? set_err(err, errlen, e, "cannot read password file %s: %s", path,
				   strerror(-e))
			 : set_err(err, errlen, -ENODATA, "password file %s is empty", path);
	}
	line[strcspn(line, "\r\n")] = '\0';
	*out = line;
	return 0;
}
