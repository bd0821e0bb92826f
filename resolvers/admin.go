package resolvers

import (
	"context"
	"fmt"

	"github.com/eventide/server/security"
)

// adminAction logs an admin write that changes the server's state: an ADMIN_ACTION event in the
// admin's name.
func (r *Resolver) adminAction(ctx context.Context, format string, args ...any) {
	r.logSecurity(ctx, security.Event{Type: security.AdminAction, Message: fmt.Sprintf(format, args...)})
}
