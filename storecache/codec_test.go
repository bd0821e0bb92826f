package storecache

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// fill sets every field of the struct v points to a distinct non-zero value, so that a codec that
// drops a field (say, one added to the domain type later) fails the round trip.
func fill(t *testing.T, v any) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("value of " + rv.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 7))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.String:
				f.Set(reflect.ValueOf([]string{"go", "music"}))
			case reflect.Uint8:
				f.SetBytes([]byte("secret"))
			default:
				t.Fatalf("fill: unhandled slice field %s", rv.Type().Field(i).Name)
			}
		case reflect.Pointer:
			n := i + 100
			f.Set(reflect.ValueOf(&n))
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("fill: unhandled struct field %s", rv.Type().Field(i).Name)
			}
			f.Set(reflect.ValueOf(time.UnixMilli(1_700_000_000_000 + int64(i)*1000).UTC()))
		default:
			t.Fatalf("fill: unhandled field %s of kind %s: teach the codec and this test about it", rv.Type().Field(i).Name, f.Kind())
		}
	}
}

func roundTrip[T any](t *testing.T, kind byte, v T, enc func(*encoder, T), dec func(*decoder) T) T {
	t.Helper()
	token := newToken()
	e := newValue(kind, token, 0)
	enc(e, v)
	d, ok := validFor(e.b, kind, token)
	if !ok {
		t.Fatalf("value not valid for its own token")
	}
	got := dec(d)
	if !d.done() {
		t.Fatalf("decode left %d bytes, err %v", len(d.s), d.err)
	}
	if _, ok := validFor(e.b, kind, newToken()); ok {
		t.Fatal("value valid for another token")
	}
	if _, ok := validFor(e.b, kind, nil); ok {
		t.Fatal("value valid without a token")
	}
	return got
}

func TestCodecCoversEveryField(t *testing.T) {
	t.Run("User", func(t *testing.T) {
		u := &eventide.User{}
		fill(t, u)
		got := roundTrip(t, kindUser, u, encodeUser, decodeUser)
		u.PasswordHash = nil // never cached
		if !reflect.DeepEqual(got, u) {
			t.Fatalf("got %+v\nwant %+v", got, u)
		}
	})
	t.Run("Venue", func(t *testing.T) {
		v := &eventide.Venue{}
		fill(t, v)
		if got := roundTrip(t, kindVenue, v, encodeVenue, decodeVenue); !reflect.DeepEqual(got, v) {
			t.Fatalf("got %+v\nwant %+v", got, v)
		}
		v.Capacity = nil
		if got := roundTrip(t, kindVenue, v, encodeVenue, decodeVenue); got.Capacity != nil {
			t.Fatalf("nil capacity came back as %v", *got.Capacity)
		}
	})
	t.Run("Event", func(t *testing.T) {
		ev := &eventide.Event{}
		fill(t, ev)
		if got := roundTrip(t, kindEvent, ev, encodeEvent, decodeEvent); !reflect.DeepEqual(got, ev) {
			t.Fatalf("got %+v\nwant %+v", got, ev)
		}
		ev.Tags = nil
		if got := roundTrip(t, kindEvent, ev, encodeEvent, decodeEvent); got.Tags == nil || len(got.Tags) != 0 {
			t.Fatalf("nil tags came back as %#v, want an empty slice like the store's", got.Tags)
		}
	})
	t.Run("Registration", func(t *testing.T) {
		r := &eventide.Registration{}
		fill(t, r)
		if got := roundTrip(t, kindRegistration, r, encodeMaybeRegistration, decodeMaybeRegistration); !reflect.DeepEqual(got, r) {
			t.Fatalf("got %+v\nwant %+v", got, r)
		}
		if got := roundTrip(t, kindRegistration, nil, encodeMaybeRegistration, decodeMaybeRegistration); got != nil {
			t.Fatalf("absence came back as %+v", got)
		}
	})
	t.Run("Page", func(t *testing.T) {
		p := &idPage{IDs: []string{"a", "b"}, Cursors: []string{"ca", "cb"}, HasNext: true, ValidUntil: 42}
		if got := roundTrip(t, kindPage, p, encodePage, decodePage); !reflect.DeepEqual(got, p) {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("Attendees", func(t *testing.T) {
		r := &eventide.Registration{}
		fill(t, r)
		c := &eventide.Conn[*eventide.Registration]{Items: []*eventide.Registration{r, r}, Cursors: []string{"x", "y"}, HasNextPage: true}
		if got := roundTrip(t, kindAttendees, c, encodeAttendees, decodeAttendees); !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestCodecRejectsOtherKindsAndVersions(t *testing.T) {
	tok := newToken()
	e := newValue(kindUser, tok, 0)
	encodeUser(e, &eventide.User{ID: "1"})
	if _, ok := validFor(e.b, kindEvent, tok); ok {
		t.Fatal("a user decodes as an event")
	}
	old := append([]byte{codecVersion + 1}, e.b[1:]...)
	if _, ok := validFor(old, kindUser, tok); ok {
		t.Fatal("another codec version decodes")
	}
}

// FuzzDecode feeds arbitrary bytes (a corrupted or foreign Redis value) to every decoder: they
// must fail cleanly, never panic or allocate without bound.
func FuzzDecode(f *testing.F) {
	tok := []byte("12345678")
	for _, kind := range []byte{kindUser, kindVenue, kindEvent, kindRegistration, kindPage, kindAttendees} {
		e := newValue(kind, tok, 0)
		switch kind {
		case kindUser:
			encodeUser(e, &eventide.User{ID: "u", Name: "n"})
		case kindVenue:
			c := 3
			encodeVenue(e, &eventide.Venue{ID: "v", Capacity: &c})
		case kindEvent:
			encodeEvent(e, &eventide.Event{ID: "e", Tags: []string{"a"}})
		case kindRegistration:
			encodeMaybeRegistration(e, &eventide.Registration{ID: "r"})
		case kindPage:
			encodePage(e, &idPage{IDs: []string{"a"}, Cursors: []string{"c"}})
		case kindAttendees:
			encodeAttendees(e, &eventide.Conn[*eventide.Registration]{Items: []*eventide.Registration{{ID: "r"}}, Cursors: []string{"c"}})
		}
		f.Add(e.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []byte{kindUser, kindVenue, kindEvent, kindRegistration, kindPage, kindAttendees} {
			tag, d := openValue(b, kind)
			if d.err != nil {
				continue
			}
			_ = tag
			switch kind {
			case kindUser:
				decodeUser(d)
			case kindVenue:
				decodeVenue(d)
			case kindEvent:
				decodeEvent(d)
			case kindRegistration:
				decodeMaybeRegistration(d)
			case kindPage:
				decodePage(d)
			case kindAttendees:
				decodeAttendees(d)
			}
		}
		decodeInvalidation(b)
	})
}

var benchEvent = &eventide.Event{
	ID: "6650a1f2c3d4e5f6a7b8c9d0", Title: "Go Meetup Lisbon", Description: "Talks about Go, then pizza. Bring a laptop.",
	StartsAt: time.UnixMilli(1_790_000_000_000).UTC(), EndsAt: time.UnixMilli(1_790_007_200_000).UTC(),
	Status: eventide.EventPublished, Capacity: 120, Tags: []string{"go", "tech", "meetup"},
	VenueID: "6650a1f2c3d4e5f6a7b8c9d1", City: "Lisbon", OrganizerID: "6650a1f2c3d4e5f6a7b8c9d2",
	ConfirmedCount: 87, WaitlistCount: 4, CreatedAt: time.UnixMilli(1_780_000_000_000).UTC(), UpdatedAt: time.UnixMilli(1_785_000_000_000).UTC(),
}

// BenchmarkCodecEvent compares the hand-written codec with encoding/json for one event record,
// encode plus decode (BENCHMARKS.md).
func BenchmarkCodecEvent(b *testing.B) {
	tok := newToken()
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			e := newValue(kindEvent, tok, 256)
			encodeEvent(e, benchEvent)
			d, ok := validFor(e.b, kindEvent, tok)
			if !ok || decodeEvent(d) == nil {
				b.Fatal("round trip failed")
			}
			size = len(e.b)
		}
		b.ReportMetric(float64(size), "bytes/value")
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for b.Loop() {
			raw, err := json.Marshal(benchEvent)
			if err != nil {
				b.Fatal(err)
			}
			var ev eventide.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				b.Fatal(err)
			}
			size = len(raw)
		}
		b.ReportMetric(float64(size), "bytes/value")
	})
}
