package auth

import (
	"context"
	"fmt"
	"strings"

	"github.com/eventide/server/eventide"
)

// EnsureAdmin makes sure an ADMIN account with email and password exists: it is created, or its
// password and role are reset. It reports whether the account was created.
func (a *Authenticator) EnsureAdmin(ctx context.Context, email, password string) (created bool, err error) {
	email = eventide.NormalizeEmail(email)
	hash, err := a.Auth.Hash(password)
	if err != nil {
		return false, fmt.Errorf("auth: admin password: %w", err)
	}
	u, err := a.Users.UserByEmail(ctx, email)
	switch {
	case eventide.IsCode(err, eventide.CodeNotFound):
		name, _, _ := strings.Cut(email, "@")
		nu := &eventide.User{Name: name, Email: email, Role: eventide.RoleAdmin, PasswordHash: hash}
		err := a.Users.CreateUser(ctx, nu)
		if err == nil {
			return true, nil
		}
		if !eventide.IsCode(err, eventide.CodeBadUserInput) {
			return false, fmt.Errorf("auth: create admin: %w", err)
		}
		// Taken since the look-up: another replica starting at the same moment created it. Reset
		// it like any existing account, so both end with the password and role configured.
		if u, err = a.Users.UserByEmail(ctx, email); err != nil {
			return false, fmt.Errorf("auth: look up admin: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("auth: look up admin: %w", err)
	}
	if err := a.Users.SetUserCredentials(ctx, u.ID, hash, eventide.RoleAdmin); err != nil {
		return false, fmt.Errorf("auth: reset admin: %w", err)
	}
	return false, nil
}
