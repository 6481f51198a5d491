// Package samtemplate reads what the local stack needs from a SAM template
// (template.yaml): every AWS::Serverless::Function with its timeout, its
// ScheduleV2 (or Schedule) events and its HttpApi routes, each route marked
// when it sits behind the API's JWT authorizer.
//
// CloudFormation's intrinsic functions (!Ref, !Sub, …) are not evaluated:
// where a plain value is needed and an intrinsic stands, the field is left
// empty and the caller uses its default.
//
// Example reads a function's timeout and schedules.
package samtemplate
