/* The ground floor's small plumbing, below every module: cleanup helpers, hex,
 * little-endian, time, sizes, growable buffers, one-line errors into a
 * caller's buffer (set_err), full reads and writes, secret files. */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFINE_CLEANUP(type, fn)                                               \
	static inline void fn##p(type *p)                                      \
	{                                                                      \
		if (*p)                                                        \
			fn(*p);                                                \
	}

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Hands ownership out of a cleanup variable. */
#define TAKE_PTR(p)                                                            \
	({                                                                     \
		__typeof__(p) _p = (p);                                        \
		(p) = NULL;                                                    \
		_p;                                                            \
	})
#define TAKE_FD(fd)                                                            \
	({                                                                     \
		int _fd = (fd);                                                \
		(fd) = -1;                                                     \
		_fd;                                                           \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

void hex_encode(const uint8_t *in, size_t len, char *out); /* out: 2*len+1 */
int hex_decode(const char *in, uint8_t *out, size_t len); /* exact length */

static inline void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}
static inline uint32_t get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int64_t now_ns(void);
int64_t mono_ns(void);
void format_time_utc(int64_t ns, char *out, size_t len); /* RFC 3339 */
/* "1M", "256K", "4MiB", "65536" -> bytes; -EINVAL on junk. */
int parse_size(const char *s, uint64_t *out);
void format_bytes(uint64_t n, char *out, size_t len); /* "1.5 GiB" */
bool all_zero(const void *buf, size_t len);

/* Makes room for n + 1 elements of size elem in *vp (capacity *cap),
 * doubling; 0 or -ENOMEM (the array is left as it was). */
int array_grow(void *vp, size_t *cap, size_t n, size_t elem);

/* Growable byte buffer. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
static inline void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* snprintf into an error buffer (err may be NULL); returns rc for chaining. */
/* Makes S one printable line in place: control characters (C0 but tab, DEL, and
 * C1, U+2028 and U+2029 in UTF-8) become '?'. Messages quote bytes from
 * damaged objects, and an error must stay one line on a terminal and in
 * a log. */
void one_line(char *s);
/* Formats a one-line message (see one_line) into err and returns rc. */
int set_err(char *err, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* full read/write helpers; return 0 or -errno (-EIO on short read). */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* The first line of a secret file (a password), without its line end, in
 * *out (the caller wipes and frees it). -ENODATA when the file is empty;
 * err names the file and the cause, never the content. */
int read_secret_file(const char *path, char **out, char *err, size_t errlen);


/* Progress reports: bytes done out of total. */
typedef void (*cairn_progress_fn)(void *opaque, uint64_t done, uint64_t total);
#endif
