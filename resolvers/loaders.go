package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/dataloader"
	"github.com/eventide/server/eventide"
)

// loaders returns the response's loaders; outside dataloader.Middleware (a test calling the
// executor directly) it makes some for this call, which still batch but remember nothing beyond it.
func (r *Resolver) loaders(ctx context.Context) *dataloader.Loaders {
	if l := dataloader.For(ctx); l != nil {
		return l
	}
	return dataloader.New(r.Store, eventide.ViewerFrom(ctx), r.Loaders)
}

// prefetchEvents remembers evs in the response's event loader and starts, as one batch each, the
// loads of the relations the query selects on them at path (below the current field): venue,
// organizer and the viewer's registration. The node resolvers then find them loaded or in flight,
// so a page costs one look-up per relation however its resolvers are scheduled.
func (r *Resolver) prefetchEvents(ctx context.Context, evs []*eventide.Event, path ...string) {
	if len(evs) == 0 {
		return
	}
	l := r.loaders(ctx)
	for _, ev := range evs {
		l.Events.Prime(ev.ID, ev)
	}
	fields := selectedBelow(ctx, path...)
	if fields["venue"] {
		var ids []string
		for _, ev := range evs {
			if ev.VenueID != "" {
				ids = append(ids, ev.VenueID)
			}
		}
		l.Venues.Prefetch(ctx, ids)
	}
	if fields["organizer"] {
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.OrganizerID
		}
		l.Users.Prefetch(ctx, ids)
	}
	if fields["viewerRegistration"] && eventide.ViewerFrom(ctx) != nil {
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.ID
		}
		l.Registrations.Prefetch(ctx, ids)
	}
}

// selectedBelow returns the names of the fields selected at path below the current field (every
// alias and fragment included), or nil outside a field.
func selectedBelow(ctx context.Context, path ...string) map[string]bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !graphql.HasOperationContext(ctx) {
		return nil
	}
	oc := graphql.GetOperationContext(ctx)
	level := []graphql.CollectedField{fc.Field}
	for _, name := range path {
		var next []graphql.CollectedField
		for _, f := range level {
			for _, c := range graphql.CollectFields(oc, f.Selections, nil) {
				if c.Name == name {
					next = append(next, c)
				}
			}
		}
		level = next
	}
	out := map[string]bool{}
	for _, f := range level {
		for _, c := range graphql.CollectFields(oc, f.Selections, nil) {
			out[c.Name] = true
		}
	}
	return out
}
