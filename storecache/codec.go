package storecache

import (
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/eventide/server/eventide"
)

// The cached values are encoded by hand in a compact binary form: a version byte, a kind byte,
// the token the value depends on, then the fields in a fixed order as varints and length-prefixed
// strings. The record types are few and fixed, so this is a few dozen lines with no reflection; it
// is several times faster and smaller than JSON (BENCHMARKS.md), and a value in an older format is
// simply a miss. TestCodecCoversEveryField fails when a domain type gains a field the codec drops.

// codecVersion changes whenever the layout below changes; it is also part of the key prefix, so
// replicas of two versions never read each other's values.
const codecVersion = 2

// Value kinds.
const (
	kindUser         byte = 'u'
	kindVenue        byte = 'v'
	kindEvent        byte = 'e'
	kindRegistration byte = 'r' // a registration, or a recorded absence
	kindPage         byte = 'p' // a page of ids with cursors
	kindAttendees    byte = 'a' // a page of registrations with cursors
	kindCount        byte = 'c'
	kindTimedCount   byte = 'n' // a count of events that have not ended, with its validity
	kindMessage      byte = 'm' // an eventUpdated message between replicas
)

var errCorrupt = errors.New("cache: malformed value")

// maxDecodeLen bounds any length read from a value, so that a corrupt one cannot make us allocate.
const maxDecodeLen = 1 << 20

type encoder struct{ b []byte }

// newValue starts a value of kind tagged with token.
func newValue(kind byte, token []byte, sizeHint int) *encoder {
	e := &encoder{b: make([]byte, 0, 3+len(token)+sizeHint)}
	e.b = append(e.b, codecVersion, kind)
	e.bytes(token)
	return e
}

func (e *encoder) uint(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)   { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(b []byte) { e.uint(uint64(len(b))); e.b = append(e.b, b...) }
func (e *encoder) time(t time.Time) {
	e.int(t.UnixMilli())
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) strs(ss []string) {
	e.uint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) optInt(p *int) {
	if p == nil {
		e.bool(false)
		return
	}
	e.bool(true)
	e.int(int64(*p))
}

// decoder reads what encoder wrote; the first error sticks and every later read returns zero. It
// works on one string copy of the value, so that the strings it returns share that copy instead of
// allocating one each.
type decoder struct {
	s   string
	err error
}

// openValue checks version and kind and returns the token and a decoder for the fields.
func openValue(v []byte, kind byte) (token string, d *decoder) {
	d = &decoder{}
	if len(v) < 2 || v[0] != codecVersion || v[1] != kind {
		d.err = errCorrupt
		return "", d
	}
	d.s = string(v[2:])
	return d.str(), d
}

// validFor reports whether v is a well-formed value of kind carrying token, and returns the
// decoder positioned at its fields.
func validFor(v []byte, kind byte, token []byte) (*decoder, bool) {
	if v == nil || token == nil {
		return nil, false
	}
	tag, d := openValue(v, kind)
	return d, d.err == nil && tag == string(token)
}

func (d *decoder) fail() { d.err, d.s = errCorrupt, "" }

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.s = d.s[i+1:]
			return v
		}
	}
	d.fail()
	return 0
}

func (d *decoder) int() int64 {
	u := d.uint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

func (d *decoder) length() int {
	n := d.uint()
	if n > maxDecodeLen || n > uint64(len(d.s)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.length()
	if d.err != nil {
		return ""
	}
	v := d.s[:n]
	d.s = d.s[n:]
	return v
}

func (d *decoder) time() time.Time {
	ms := d.int()
	if d.err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.s) == 0 || d.s[0] > 1 {
		d.fail()
		return false
	}
	v := d.s[0] == 1
	d.s = d.s[1:]
	return v
}

func (d *decoder) intN() int {
	v := d.int()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *decoder) strs() []string {
	n := d.uint()
	// Every string costs at least one byte, which bounds n by what is left.
	if d.err != nil || n > uint64(len(d.s)) {
		d.fail()
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	if d.err != nil {
		return nil
	}
	return out
}

func (d *decoder) optInt() *int {
	if !d.bool() {
		return nil
	}
	v := d.intN()
	if d.err != nil {
		return nil
	}
	return &v
}

// done reports whether every byte was consumed without error.
func (d *decoder) done() bool { return d.err == nil && len(d.s) == 0 }

// Users are cached without their password hash: nothing that reads a user by id needs it, and it
// has no business in a shared cache. Sign-in reads the store by email.
func encodeUser(e *encoder, u *eventide.User) {
	e.str(u.ID)
	e.str(u.Name)
	e.str(u.Email)
	e.str(string(u.Role))
	e.time(u.CreatedAt)
	e.time(u.UpdatedAt)
}

func decodeUser(d *decoder) *eventide.User {
	u := &eventide.User{ID: d.str(), Name: d.str(), Email: d.str(), Role: eventide.Role(d.str())}
	u.CreatedAt, u.UpdatedAt = d.time(), d.time()
	return u
}

func encodeVenue(e *encoder, v *eventide.Venue) {
	e.str(v.ID)
	e.str(v.Name)
	e.str(v.Address)
	e.str(v.City)
	e.optInt(v.Capacity)
	e.str(v.CreatedByID)
	e.time(v.CreatedAt)
	e.str(v.TimeZone)
}

func decodeVenue(d *decoder) *eventide.Venue {
	v := &eventide.Venue{ID: d.str(), Name: d.str(), Address: d.str(), City: d.str()}
	v.Capacity = d.optInt()
	v.CreatedByID = d.str()
	v.CreatedAt = d.time()
	v.TimeZone = d.str()
	return v
}

func encodeEvent(e *encoder, ev *eventide.Event) {
	e.str(ev.ID)
	e.str(ev.Title)
	e.str(ev.Description)
	e.time(ev.StartsAt)
	e.time(ev.EndsAt)
	e.str(string(ev.Status))
	e.int(int64(ev.Capacity))
	e.strs(ev.Tags)
	e.str(ev.VenueID)
	e.str(ev.City)
	e.str(ev.OrganizerID)
	e.int(int64(ev.ConfirmedCount))
	e.int(int64(ev.WaitlistCount))
	e.str(ev.CancelReason)
	e.time(ev.CreatedAt)
	e.time(ev.UpdatedAt)
	e.str(ev.TimeZone)
	e.bool(ev.Online)
	e.str(ev.OnlineURL)
	e.int(int64(ev.Revision))
}

func decodeEvent(d *decoder) *eventide.Event {
	ev := &eventide.Event{ID: d.str(), Title: d.str(), Description: d.str()}
	ev.StartsAt, ev.EndsAt = d.time(), d.time()
	ev.Status = eventide.EventStatus(d.str())
	ev.Capacity = d.intN()
	ev.Tags = d.strs()
	ev.VenueID, ev.City, ev.OrganizerID = d.str(), d.str(), d.str()
	ev.ConfirmedCount, ev.WaitlistCount = d.intN(), d.intN()
	ev.CancelReason = d.str()
	ev.CreatedAt, ev.UpdatedAt = d.time(), d.time()
	ev.TimeZone, ev.Online, ev.OnlineURL, ev.Revision = d.str(), d.bool(), d.str(), d.intN()
	if ev.Tags == nil {
		ev.Tags = []string{}
	}
	return ev
}

func encodeRegistration(e *encoder, r *eventide.Registration) {
	e.str(r.ID)
	e.str(r.EventID)
	e.str(r.UserID)
	e.str(string(r.Status))
	e.time(r.CreatedAt)
	e.time(r.UpdatedAt)
	e.str(r.CancelReason)
}

func decodeRegistration(d *decoder) *eventide.Registration {
	r := &eventide.Registration{ID: d.str(), EventID: d.str(), UserID: d.str(), Status: eventide.RegistrationStatus(d.str())}
	r.CreatedAt, r.UpdatedAt = d.time(), d.time()
	r.CancelReason = d.str()
	return r
}

// maybeRegistration is a registration or a recorded absence (nil), so that "the viewer has not
// registered" is cached too.
func encodeMaybeRegistration(e *encoder, r *eventide.Registration) {
	e.bool(r != nil)
	if r != nil {
		encodeRegistration(e, r)
	}
}

func decodeMaybeRegistration(d *decoder) *eventide.Registration {
	if !d.bool() {
		return nil
	}
	return decodeRegistration(d)
}

// idPage is a cached page of a list: the ids in order with their cursors. ValidUntil, when not
// zero, is the instant (ms) from which the page may no longer be right because an item in or
// right after it ends (lists of events that have not ended).
type idPage struct {
	IDs        []string
	Cursors    []string
	HasNext    bool
	ValidUntil int64
}

func encodePage(e *encoder, p *idPage) {
	e.strs(p.IDs)
	e.strs(p.Cursors)
	e.bool(p.HasNext)
	e.int(p.ValidUntil)
}

func decodePage(d *decoder) *idPage {
	p := &idPage{IDs: d.strs(), Cursors: d.strs(), HasNext: d.bool(), ValidUntil: d.int()}
	if d.err == nil && len(p.IDs) != len(p.Cursors) {
		d.fail()
	}
	return p
}

func encodeAttendees(e *encoder, c *eventide.Conn[*eventide.Registration]) {
	e.uint(uint64(len(c.Items)))
	for _, r := range c.Items {
		encodeRegistration(e, r)
	}
	e.strs(c.Cursors)
	e.bool(c.HasNextPage)
}

func decodeAttendees(d *decoder) *eventide.Conn[*eventide.Registration] {
	n := d.uint()
	if d.err != nil || n > uint64(len(d.s)) {
		d.fail()
		return nil
	}
	c := &eventide.Conn[*eventide.Registration]{Items: make([]*eventide.Registration, n)}
	for i := range c.Items {
		c.Items[i] = decodeRegistration(d)
	}
	c.Cursors = d.strs()
	c.HasNextPage = d.bool()
	if d.err == nil && len(c.Items) != len(c.Cursors) {
		d.fail()
	}
	return c
}

// KeyPrefix is the one prefix of every key and channel this server uses in Redis: the database
// name keeps two deployments sharing a Redis apart, and the codec version keeps two versions of
// the server from reading each other's values and messages.
func KeyPrefix(database string) string {
	return "eventide:" + database + ":v" + strconv.Itoa(codecVersion) + ":"
}
