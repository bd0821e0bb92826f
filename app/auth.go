package app

import (
	"context"

	"github.com/eventide/server/eventide"
)

// AuthService signs people up and in.
type AuthService struct{ *base }

// Session is a signed-in user and the token that proves it.
type Session struct {
	Token string
	User  *eventide.User
}

// SignUp creates a USER account and signs it in. Bad input is BAD_USER_INPUT naming the field
// (a taken email included); a client over its sign-up budget gets the Guard's error before the
// costly hash.
func (s *AuthService) SignUp(ctx context.Context, email, name, password string) (*Session, error) {
	email, err := cleanEmail(email)
	if err != nil {
		return nil, err
	}
	if name, err = text("name", name, MaxName, true); err != nil {
		return nil, err
	}
	if err := s.Passwords.Policy(password); err != nil {
		return nil, eventide.InvalidField("password", "%s", err.Error())
	}
	if s.Guard != nil {
		if err := s.Guard.Signup(ctx); err != nil {
			return nil, err
		}
	}
	// A taken email is refused before the costly hash; the store's unique index stays the final
	// word for two sign-ups that race.
	switch _, err := s.Store.UserByEmail(ctx, email); {
	case err == nil:
		return nil, eventide.InvalidField("email", "an account with this email already exists")
	case !eventide.IsCode(err, eventide.CodeNotFound):
		return nil, err
	}
	hash, err := s.Passwords.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	u := &eventide.User{Name: name, Email: email, Role: eventide.RoleUser, PasswordHash: hash}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	s.note(ctx, Note{Kind: NoteSignedUp, UserID: u.ID, Email: u.Email, Message: "new account"})
	return s.session(u)
}

// Login signs in the account of email with password: the Guard's error when the client or the
// email is over its login budget, UNAUTHENTICATED for a wrong email or password (alike, and as
// slow: an unknown email is checked against a dummy hash). Every outcome is told to the Guard
// (the brute-force detector) and recorded.
func (s *AuthService) Login(ctx context.Context, email, password string) (*Session, error) {
	email = eventide.NormalizeEmail(email)
	if s.Guard != nil {
		if err := s.Guard.Login(ctx, email); err != nil {
			return nil, err
		}
	}
	u, err := s.Store.UserByEmail(ctx, email)
	if err != nil && !eventide.IsCode(err, eventide.CodeNotFound) {
		return nil, err
	}
	var hash []byte
	if u != nil {
		hash = u.PasswordHash
	}
	ok, err := s.Passwords.Verify(ctx, hash, password)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.note(ctx, Note{Kind: NoteLoginFailed, Email: email, Message: "wrong email or password"})
		if s.Guard != nil {
			s.Guard.LoginFailed(ctx, email)
		}
		return nil, eventide.Errorf(eventide.CodeUnauthenticated, "invalid email or password")
	}
	if s.Guard != nil {
		s.Guard.LoginSucceeded(ctx, email)
	}
	s.note(ctx, Note{Kind: NoteLoginSucceeded, UserID: u.ID, Email: u.Email, Message: "signed in as " + string(u.Role)})
	return s.session(u)
}

func (s *AuthService) session(u *eventide.User) (*Session, error) {
	tok, err := s.Passwords.Issue(u.ID)
	if err != nil {
		return nil, eventide.Internal(err)
	}
	return &Session{Token: tok, User: u}, nil
}
