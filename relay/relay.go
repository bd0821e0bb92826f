// Package relay holds the types the schema binds to beyond the domain: Relay connections, each
// built from one page the store returned (totalCount counted only when asked), and the Time and
// Int64 scalars.
package relay

import (
	"context"

	"github.com/eventide/server/eventide"
)

// PageInfo says where a page ends.
type PageInfo struct {
	HasNextPage bool
	EndCursor   *string
}

// Counter counts every item of a connection, across pages.
type Counter func(ctx context.Context) (int, error)

func pageInfo[T any](c *eventide.Conn[T]) *PageInfo {
	pi := &PageInfo{HasNextPage: c.HasNextPage}
	if end := c.EndCursor(); end != "" {
		pi.EndCursor = &end
	}
	return pi
}

// EventEdge is an event and its cursor.
type EventEdge struct {
	Cursor string
	Node   *eventide.Event
}

// EventConnection is a page of events.
type EventConnection struct {
	Edges    []*EventEdge
	PageInfo *PageInfo
	count    Counter
}

// Events builds a connection from a store page and a counter for totalCount.
func Events(c *eventide.Conn[*eventide.Event], count Counter) *EventConnection {
	edges := make([]*EventEdge, len(c.Items))
	for i, e := range c.Items {
		edges[i] = &EventEdge{Cursor: c.Cursors[i], Node: e}
	}
	return &EventConnection{Edges: edges, PageInfo: pageInfo(c), count: count}
}

// TotalCount counts every matching event; it runs only when the field is selected.
func (c *EventConnection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// UserEdge is a user and its cursor.
type UserEdge struct {
	Cursor string
	Node   *eventide.User
}

// UserConnection is a page of users.
type UserConnection struct {
	Edges    []*UserEdge
	PageInfo *PageInfo
	count    Counter
}

// Users builds a connection from users and their cursors (parallel slices) and a counter.
func Users[T any](c *eventide.Conn[T], users []*eventide.User, count Counter) *UserConnection {
	edges := make([]*UserEdge, len(users))
	for i, u := range users {
		edges[i] = &UserEdge{Cursor: c.Cursors[i], Node: u}
	}
	return &UserConnection{Edges: edges, PageInfo: pageInfo(c), count: count}
}

// TotalCount counts every matching user.
func (c *UserConnection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// VenueEdge is a venue and its cursor.
type VenueEdge struct {
	Cursor string
	Node   *eventide.Venue
}

// VenueConnection is a page of venues.
type VenueConnection struct {
	Edges    []*VenueEdge
	PageInfo *PageInfo
	count    Counter
}

// Venues builds a connection from a store page and a counter.
func Venues(c *eventide.Conn[*eventide.Venue], count Counter) *VenueConnection {
	edges := make([]*VenueEdge, len(c.Items))
	for i, v := range c.Items {
		edges[i] = &VenueEdge{Cursor: c.Cursors[i], Node: v}
	}
	return &VenueConnection{Edges: edges, PageInfo: pageInfo(c), count: count}
}

// TotalCount counts every matching venue.
func (c *VenueConnection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// RegistrationEdge is a registration and its cursor.
type RegistrationEdge struct {
	Cursor string
	Node   *eventide.Registration
}

// RegistrationConnection is a page of registrations.
type RegistrationConnection struct {
	Edges    []*RegistrationEdge
	PageInfo *PageInfo
	count    Counter
}

// Registrations builds a connection from a store page and a counter.
func Registrations(c *eventide.Conn[*eventide.Registration], count Counter) *RegistrationConnection {
	edges := make([]*RegistrationEdge, len(c.Items))
	for i, r := range c.Items {
		edges[i] = &RegistrationEdge{Cursor: c.Cursors[i], Node: r}
	}
	return &RegistrationConnection{Edges: edges, PageInfo: pageInfo(c), count: count}
}

// TotalCount counts every matching registration.
func (c *RegistrationConnection) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }
