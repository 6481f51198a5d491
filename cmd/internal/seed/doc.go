// Package seed holds the local stack's demo users and credentials: their
// fixed ids (events/ and scripts name them), the public HS256 settings of
// the local JWT authorizer, and Users, which creates the users in a
// database with their plans, API keys and tokens.
//
//	users, admin, err := seed.Users(ctx, db, time.Now().UTC())
//	if err != nil { ... }
//	for _, u := range users { // free, pro, enterprise
//		fmt.Println(u.Plan, u.UserID, u.APIKey, u.Token)
//	}
//	fmt.Println(admin.Token) // an admin's bearer token
package seed
