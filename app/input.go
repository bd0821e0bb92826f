package app

import (
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
)

// Input limits: generous for people, small enough that a hostile client cannot store megabytes.
const (
	MaxTitle       = 200
	MaxDescription = 10_000
	MaxName        = 200
	MaxAddress     = 500
	MaxTags        = 20
	MaxTag         = 40
	MaxSearch      = 100
	MaxCapacity    = 1_000_000
	MaxEmail       = 254
	MaxOnlineURL   = 2000
)

// Change is an input field that may be absent (Set false: leave as it is) or given, possibly as
// null (a nil Value).
type Change[T any] struct {
	Value T
	Set   bool
}

// To returns a Change that sets v.
func To[T any](v T) Change[T] { return Change[T]{Value: v, Set: true} }

// text trims s and checks its length; required refuses an empty one.
func text(field, s string, max int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case required && s == "":
		return "", eventide.InvalidField(field, "must not be empty")
	case utf8.RuneCountInString(s) > max:
		return "", eventide.InvalidField(field, "must be at most %d characters", max)
	}
	return s, nil
}

// optionalText is text for an optional argument: "" when absent.
func optionalText(field string, s *string, max int) (string, error) {
	if s == nil {
		return "", nil
	}
	return text(field, *s, max, false)
}

// foldTag is the form tags are stored and filtered in.
func foldTag(t string) string { return strings.ToLower(strings.TrimSpace(t)) }

func cleanTags(tags []string) ([]string, error) {
	if len(tags) > MaxTags {
		return nil, eventide.InvalidField("tags", "at most %d tags", MaxTags)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = foldTag(t)
		if t == "" {
			continue
		}
		if utf8.RuneCountInString(t) > MaxTag {
			return nil, eventide.InvalidField("tags", "each tag at most %d characters", MaxTag)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// cleanEmail normalises an email a new account gives and checks it is one.
func cleanEmail(email string) (string, error) {
	email = eventide.NormalizeEmail(email)
	if len(email) > MaxEmail {
		return "", eventide.InvalidField("email", "must be at most %d characters", MaxEmail)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "", eventide.InvalidField("email", "must be an email address")
	}
	return email, nil
}

func validCapacity(c int) error {
	if c <= 0 || c > MaxCapacity {
		return eventide.InvalidField("capacity", "must be between 1 and %d", MaxCapacity)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// EventInput is a new event or the changes to one; nil fields stay as they are.
type EventInput struct {
	Title       *string
	Description *string
	StartsAt    *time.Time
	EndsAt      *time.Time
	Capacity    *int
	Tags        []string
	// VenueID set to nil removes the venue.
	VenueID   Change[*string]
	Online    *bool
	OnlineURL *string
	TimeZone  *string
}

// VenueInput is a new venue or the changes to one; nil fields stay as they are.
type VenueInput struct {
	Name     *string
	Address  *string
	City     *string
	Capacity Change[*int]
	TimeZone *string
}

// applyOnline applies online and onlineUrl: a link needs an online event, and turning an event
// offline removes its link.
func applyOnline(ev *eventide.Event, in EventInput) error {
	if in.Online != nil {
		ev.Online = *in.Online
		if !ev.Online {
			ev.OnlineURL = ""
		}
	}
	if in.OnlineURL == nil {
		return nil
	}
	u := strings.TrimSpace(*in.OnlineURL)
	if u == "" {
		ev.OnlineURL = ""
		return nil
	}
	if !ev.Online {
		return eventide.InvalidField("onlineUrl", "only an online event has a link (set online: true)")
	}
	p, err := url.Parse(u)
	if len(u) > MaxOnlineURL || err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || hasControl(u) {
		return eventide.InvalidField("onlineUrl", "must be an http or https URL of at most %d characters", MaxOnlineURL)
	}
	ev.OnlineURL = u
	return nil
}

// applyVenueInput validates in onto v; absent fields stay as they are.
func applyVenueInput(v *eventide.Venue, in VenueInput) error {
	var err error
	if in.Name != nil {
		if v.Name, err = text("name", *in.Name, MaxName, true); err != nil {
			return err
		}
	}
	if in.Address != nil {
		if v.Address, err = text("address", *in.Address, MaxAddress, true); err != nil {
			return err
		}
	}
	if in.City != nil {
		if v.City, err = text("city", *in.City, MaxName, true); err != nil {
			return err
		}
	}
	if in.Capacity.Set {
		if c := in.Capacity.Value; c != nil {
			if err := validCapacity(*c); err != nil {
				return err
			}
		}
		v.Capacity = in.Capacity.Value
	}
	if in.TimeZone != nil {
		loc, err := eventide.ValidTimeZone("timeZone", *in.TimeZone)
		if err != nil {
			return err
		}
		v.TimeZone = loc.String()
	}
	return nil
}
