from support import RECORDS, new_record


def test_create_and_get(api):
    created = api.post(RECORDS, json=new_record())
    assert created.status_code == 201
    fetched = api.get(f"{RECORDS}/{created.json['id']}")
    assert fetched.json == created.json


def test_live_server_health(server):
    health = server.health()
    assert health["status"] == "ok"
    assert health["records"] >= 200
