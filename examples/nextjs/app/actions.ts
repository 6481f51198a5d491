"use server";

import { cookies } from "next/headers";
import { redirect } from "next/navigation";

// The cookie that holds the signed-in user's API key (HTTP only: the
// browser's scripts never see it).
const KEY_COOKIE = "nexus_api_key";

export async function signIn(form: FormData) {
  const key = String(form.get("api_key") ?? "").trim();
  if (key) {
    (await cookies()).set(KEY_COOKIE, key, { httpOnly: true, sameSite: "lax", path: "/", secure: process.env.NODE_ENV === "production" && !process.env.NEXUS_INSECURE_COOKIE });
  }
  redirect("/");
}

export async function signOut() {
  (await cookies()).delete(KEY_COOKIE);
  redirect("/");
}
