"""factory_boy factories, one per model."""

from __future__ import annotations

import factory

from accounts.models import Group, User
from servers.models import Profile, Server


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    is_approved = True
    password = factory.django.Password("correct horse battery")


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group{n}")


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile

    slug = factory.Sequence(lambda n: f"profile-{n}")
    display_name = factory.Sequence(lambda n: f"Profile {n}")


class ServerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Server

    user = factory.SubFactory(UserFactory)
    name = ""
