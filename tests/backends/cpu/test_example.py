from tests.oracle import check, rand


def test_relu_matches_reference():
    check("Relu", [rand(2, 3, 4)])


def test_add_broadcasts_like_reference():
    check("Add", [rand(2, 3, 4), rand(3, 1)])
