package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestPaginationStableUnderInserts walks every event page by page while new events are inserted
// between pages, both before and after the walker's position.
func TestPaginationStableUnderInserts(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	original := map[string]bool{}
	for i := range 25 {
		original[ts.publishedEvent(org, fmt.Sprintf("Event %02d", i), 10, time.Duration(i+1)*time.Hour)] = true
	}
	seen := map[string]bool{}
	after := ""
	pages := 0
	for {
		vars := map[string]any{"first": 4}
		if after != "" {
			vars["after"] = after
		}
		var out struct {
			Events struct {
				Edges []struct {
					Cursor string
					Node   struct{ ID, StartsAt string }
				}
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		ts.mustData("", `query($first: Int, $after: String){ events(first: $first, after: $after){ edges { cursor node { id startsAt } } pageInfo { hasNextPage endCursor } } }`, vars, &out)
		for _, e := range out.Events.Edges {
			if seen[e.Node.ID] {
				t.Fatalf("event %s seen twice", e.Node.ID)
			}
			seen[e.Node.ID] = true
		}
		pages++
		// Insert one event earlier than everything and one later than everything.
		ts.publishedEvent(org, fmt.Sprintf("Early %d", pages), 10, 30*time.Minute-time.Duration(pages)*time.Minute)
		ts.publishedEvent(org, fmt.Sprintf("Late %d", pages), 10, 1000*time.Hour+time.Duration(pages)*time.Hour)
		if !out.Events.PageInfo.HasNextPage {
			break
		}
		after = *out.Events.PageInfo.EndCursor
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
	}
	for id := range original {
		if !seen[id] {
			t.Fatalf("event %s never seen", id)
		}
	}

	t.Run("ErrBadCursor", func(t *testing.T) {
		for _, c := range []string{"nope", "ZTpub3Q6aGV4OjEy", "djo1ZjAwMDAwMDAwMDAwMDAwMDAwMDAwMDA6YQ"} {
			ts.mustCode("BAD_USER_INPUT", "", `query($a: String){ events(after: $a){ totalCount } }`, map[string]any{"a": c})
		}
	})
	t.Run("FirstCappedAt100", func(t *testing.T) {
		for range 80 {
			ts.publishedEvent(org, "Filler", 5, 500*time.Hour)
		}
		var out struct {
			Events struct{ Edges []struct{ Cursor string } }
		}
		ts.mustData("", `{ events(first: 1000){ edges { cursor } } }`, nil, &out)
		if len(out.Events.Edges) != 100 {
			t.Fatalf("first: 1000 returned %d edges, want the cap of 100", len(out.Events.Edges))
		}
		ts.mustCode("BAD_USER_INPUT", "", `{ events(first: -1){ totalCount } }`, nil)
	})
}
